"""The gRPC servicer: each method validates, calls the decision flow or the store, and answers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc

from engine.codec import encode_state
from engine.compile import CompiledJourney
from engine.errors import JourneymanError
from engine.kernels import codes
from engine.merge import merge_states
from engine.state import CustomerState
from engine.view import customer_view
from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.auth import caller_may
from server.config import Settings
from server.convert import DecideInput, Violations, decide_input, value_to_pb, values_from_pb
from server.decisions import ActiveRules, Decider, decode_or_new
from server.errors import (
    Busy,
    Conflicted,
    EventIdReused,
    EventInvalid,
    FieldViolation,
    abort,
    status_code,
)
from server.keys import utc_day, validate_customer_id
from server.reload import LiveRules
from server.store import CommitOutcome, StageChange, Store

log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[object, object]


class JourneyService(pb_grpc.JourneyServiceServicer):
    def __init__(self, settings: Settings, live: LiveRules, store: Store, decider: Decider) -> None:
        self._settings = settings
        self._live = live
        self._rules = live.active
        self._store = store
        self._decider = decider

    async def Decide(self, request: pb.DecideRequest, context: Context) -> pb.DecideResponse:
        try:
            valid = decide_input(request, self._decider.now_ms(), self._settings)
            decision = await self._decider.decide(valid, context.time_remaining())
        except JourneymanError as error:
            await abort(context, error)
            raise  # abort() raised already; this keeps type checkers aware
        return pb.DecideResponse(decision=decision)

    async def DecideStream(
        self, requests: AsyncIterator[pb.DecideStreamRequest], context: Context
    ) -> AsyncIterator[pb.DecideStreamResponse]:
        async for message in requests:
            try:
                valid = decide_input(message.request, self._decider.now_ms(), self._settings)
                decision = await self._decider.decide(valid, context.time_remaining())
            except EVENT_ERRORS as error:
                # This message fails alone: the stream goes on with the next one.
                answer = pb.DecideStreamResponse()
                _fail(answer, error)
                yield answer
                continue
            except JourneymanError as error:
                await abort(context, error)
                raise
            yield pb.DecideStreamResponse(decision=decision)

    async def DecideBatch(
        self, request: pb.DecideBatchRequest, context: Context
    ) -> pb.DecideBatchResponse:
        if len(request.requests) > self._settings.max_batch:
            count = len(request.requests)
            violation = FieldViolation(
                "requests", f"has {count}; send at most {self._settings.max_batch}"
            )
            await abort(context, EventInvalid([violation]))
        now_ms = self._decider.now_ms()
        results = [pb.BatchResult(index=i) for i in range(len(request.requests))]
        valid: list[DecideInput] = []
        positions: list[int] = []
        for index, item in enumerate(request.requests):
            try:
                valid.append(decide_input(item, now_ms, self._settings))
                positions.append(index)
            except EventInvalid as error:
                _fail(results[index], error)
        outcomes = await self._decider.decide_batch(valid, context.time_remaining())
        for index, outcome in zip(positions, outcomes, strict=True):
            if isinstance(outcome, EVENT_ERRORS):
                _fail(results[index], outcome)
            elif isinstance(outcome, JourneymanError):
                await abort(context, outcome)
            else:
                results[index].decision.CopyFrom(outcome)
                if outcome.degraded:
                    # Not stored: a bulk caller must not take it for applied.
                    results[index].error_code = grpc.StatusCode.UNAVAILABLE.value[0]
                    results[index].error_message = NOT_STORED_DEGRADED
        not_stored = sum(1 for result in results if result.error_code)
        return pb.DecideBatchResponse(results=results, not_stored=not_stored)

    async def GetCustomer(
        self, request: pb.GetCustomerRequest, context: Context
    ) -> pb.GetCustomerResponse:
        customer = await self._valid_customer(request.customer_id, "customer_id", context)
        try:
            as_of_ms = self._valid_as_of(request.as_of_ms)
            loaded = await self._store.load(customer, None, anonymous=False)
        except JourneymanError as error:
            await abort(context, error)
            raise
        active = self._rules()
        state = decode_or_new(active.ruleset, loaded.state)
        view = self._view(customer, state, active, as_of_ms)
        return pb.GetCustomerResponse(customer=view, known=loaded.state is not None)

    def _valid_as_of(self, as_of_ms: int) -> int:
        """The moment a view is read at: `as_of_ms`, or now when it is 0."""
        now_ms = self._decider.now_ms()
        if as_of_ms == 0:
            return now_ms
        if as_of_ms < 0 or as_of_ms > now_ms + self._settings.max_future_skew_ms:
            problem = "is negative" if as_of_ms < 0 else "is in the future"
            raise EventInvalid([
                FieldViolation("as_of_ms", f"{problem}; send ms since the Unix epoch, or 0 for now")
            ])  # fmt: skip
        return as_of_ms

    async def ForgetCustomer(
        self, request: pb.ForgetCustomerRequest, context: Context
    ) -> pb.ForgetCustomerResponse:
        customer = await self._valid_customer(request.customer_id, "customer_id", context)
        try:
            stored = await self._store.load(customer, None, anonymous=False)
            deleted = await self._store.forget(customer, anonymous=False)
            await self._count_moves(stored.state, None)
        except JourneymanError as error:
            await abort(context, error)
            raise
        return pb.ForgetCustomerResponse(deleted_keys=deleted)

    async def _count_moves(self, before: bytes | None, after: CustomerState | None) -> None:
        """Keep the customers-per-stage counts true when a customer appears, leaves or is
        merged outside a decision."""
        ruleset = self._rules().ruleset
        old = decode_or_new(ruleset, before) if before is not None else None
        changes = []
        for journey in ruleset.journeys:
            from_stage = _stage(journey, old) if old else None
            to_stage = _stage(journey, after) if after else None
            if from_stage != to_stage:
                changes.append(StageChange(journey.name, from_stage, to_stage, None))
        if changes:
            await self._store.bump_stats(changes, utc_day(self._decider.now_ms()))

    async def GetRuleset(
        self, request: pb.GetRulesetRequest, context: Context
    ) -> pb.GetRulesetResponse:
        in_force = self._live.in_force
        ruleset = in_force.active.ruleset
        return pb.GetRulesetResponse(
            version=ruleset.version,
            files=[
                pb.RulesFile(
                    path=j.source, journey=j.name, declared_version=j.version,
                    sha256=j.source_sha256,
                )
                for j in ruleset.journeys
            ],
            loaded_at_ms=in_force.loaded_at_ms,
            reloads=self._live.reloads,
            failed_reloads=self._live.failed_reloads,
        )  # fmt: skip

    async def Identify(self, request: pb.IdentifyRequest, context: Context) -> pb.IdentifyResponse:
        customer = await self._valid_customer(request.customer_id, "customer_id", context)
        try:
            traits = self._valid_traits(request)
            view, merged = await self._identify(customer, request.anonymous_id, traits)
        except JourneymanError as error:
            await abort(context, error)
            raise
        if not caller_may("read"):
            # Identify is a `decide` call: it says what it did, the profile needs `read`.
            return pb.IdentifyResponse(merged=merged)
        return pb.IdentifyResponse(customer=view, merged=merged)

    def _valid_traits(self, request: pb.IdentifyRequest) -> dict[str, str | float | bool]:
        violations = Violations()
        if request.anonymous_id and (problem := validate_customer_id(request.anonymous_id)):
            violations.add("anonymous_id", problem)
        elif request.anonymous_id and request.anonymous_id == request.customer_id:
            violations.add(
                "anonymous_id",
                "is the customer_id itself; send the visitor's anonymous id to merge, or leave"
                " it empty to set traits only",
            )
        traits = values_from_pb(request.traits, "traits", self._settings, violations)
        violations.raise_if_any()
        return traits

    async def _identify(
        self, customer: str, anonymous_id: str, traits: dict[str, str | float | bool]
    ) -> tuple[pb.CustomerView, bool]:
        """Merge the visitor (if any) and set traits, with the same CAS retry as Decide.

        The visitor's state is first taken out of Redis (deleted only if no event landed on it
        since it was read), then merged into the customer. Events the visitor sends after the
        take start a new visitor state, which the next Identify merges: none is lost between.
        """
        active = self._rules()
        taken = await self._take_visitor(anonymous_id) if anonymous_id else None
        visitor = decode_or_new(active.ruleset, taken) if taken is not None else None
        try:
            for _ in range(self._settings.conflict_retries + 1):
                known = await self._store.load(customer, None, anonymous=False)
                state = decode_or_new(active.ruleset, known.state)
                if visitor is not None:
                    state = merge_states(active.ruleset, state, visitor)
                state = state.with_traits(traits)
                result = await self._store.commit(
                    customer, known.version, encode_state(active.ruleset, state), None, None,
                    anonymous=False,
                )  # fmt: skip
                if result.outcome is CommitOutcome.COMMITTED:
                    if taken is not None:
                        await self._count_moves(taken, None)
                    await self._count_moves(known.state, state)
                    return self._view(customer, state, active), visitor is not None
        except BaseException:
            if visitor is not None:
                await self._give_back(anonymous_id, visitor)
            raise
        if visitor is not None:
            await self._give_back(anonymous_id, visitor)
        raise Conflicted(
            f"customer updated concurrently {self._settings.conflict_retries + 1} times"
        )

    async def _take_visitor(self, anonymous_id: str) -> bytes | None:
        """The visitor's stored state, deleted from Redis; None if there is none."""
        for _ in range(self._settings.conflict_retries + 1):
            loaded = await self._store.load(anonymous_id, None, anonymous=True)
            if loaded.state is None:
                return None
            if await self._store.take(anonymous_id, loaded.version, anonymous=True):
                return loaded.state
        raise Conflicted(
            f"visitor updated concurrently {self._settings.conflict_retries + 1} times"
        )

    async def _give_back(self, anonymous_id: str, taken: CustomerState) -> None:
        """Put a taken visitor state back (merged with any events since) when the merge into
        the customer failed, so that a failed Identify loses nothing."""
        ruleset = self._rules().ruleset
        for _ in range(self._settings.conflict_retries + 1):
            current = await self._store.load(anonymous_id, None, anonymous=True)
            state = taken
            if current.state is not None:
                state = merge_states(ruleset, decode_or_new(ruleset, current.state), taken)
            result = await self._store.commit(
                anonymous_id, current.version, encode_state(ruleset, state), None, None,
                anonymous=True,
            )  # fmt: skip
            if result.outcome is CommitOutcome.COMMITTED:
                return
        log.error("a visitor's state taken for Identify could not be put back; it is lost")

    async def _valid_customer(self, customer_id: str, field: str, context: Context) -> str:
        problem = validate_customer_id(customer_id) if customer_id else "is required"
        if problem is not None:
            await abort(context, EventInvalid([FieldViolation(field, problem)]))
        return customer_id

    def _view(
        self, customer: str, state: CustomerState, active: ActiveRules, as_of_ms: int | None = None
    ) -> pb.CustomerView:
        """The customer view at `as_of_ms` (default now)."""
        at_ms = self._decider.now_ms() if as_of_ms is None else as_of_ms
        view = customer_view(active.ruleset, state, at_ms)
        return pb.CustomerView(
            customer_id=customer,
            journeys=[
                pb.CustomerJourney(
                    journey=j.journey, stage=j.stage, stage_entered_ms=j.stage_entered_ms,
                    friction_score=j.friction_score, friction_level=j.friction_level,
                    counters=dict(j.counters),
                    recent_actions=[
                        pb.ShownAction(action=action, last_shown_ms=shown_ms)
                        for action, shown_ms in j.last_shown_ms.items()
                    ],
                )
                for j in view.journeys
            ],
            traits={name: value_to_pb(value) for name, value in view.traits.items()},
            last_event_ms=view.last_event_ms,
            ruleset_version=active.ruleset.version,
        )  # fmt: skip


def _stage(journey: CompiledJourney, state: CustomerState) -> str:
    return journey.stage_ids[int(state.journey(journey).ints[codes.INT_STAGE])]


# The errors that fail one event of a stream or a batch and leave the others be.
EVENT_ERRORS = (EventInvalid, Busy, Conflicted, EventIdReused)
NOT_STORED_DEGRADED = (
    "not stored: Redis could not be reached; the decision is from the rules alone (degraded);"
    " send the event again, same event_id, once Redis is back"
)


def _fail(result: pb.BatchResult | pb.DecideStreamResponse, error: JourneymanError) -> None:
    """Say on `result` why its event was not applied, as Decide's status would."""
    result.error_code = status_code(error).value[0]
    result.error_message = str(error)
    if isinstance(error, EventInvalid):
        result.error_message = "; ".join(f"{v.field}: {v.description}" for v in error.violations)
        result.field_violations.extend(
            pb.FieldViolation(field=v.field, description=v.description) for v in error.violations
        )
    elif isinstance(error, Busy):
        result.retry_after_ms = max(1, round(error.retry_after_s * 1000))
