"""The API's messages and the engine's types: validating requests and converting them
(`convert`), the decision ring's entries (`dedupe`), domain errors and their status codes
(`errors`). May import `core` and `store`."""
