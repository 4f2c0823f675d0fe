"""The gRPC servicer: each method validates, calls the decision flow or the store, and answers.

Validation and conversion are `server.protocol.convert`'s, decisions `server.decisions.decider`',
Identify `server.decisions.identify`'s; a method here reads like the data flow and holds no logic
of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc

from engine.errors import JourneymanError, StateFromNewerServer
from engine.state import CustomerState
from engine.view import customer_view
from journeyman.v1 import journeyman_pb2 as pb
from journeyman.v1 import journeyman_pb2_grpc as pb_grpc
from server.analytics.action_report import action_report
from server.analytics.journey_report import journey_stats
from server.api.auth import caller_may
from server.api.subscribe import follow
from server.core.config import Settings
from server.decisions.active import decode_or_new
from server.decisions.decider import Decider
from server.decisions.identify import Identification
from server.protocol.convert import (
    DecideInput,
    as_of_input,
    customer_id_input,
    decide_input,
    identify_input,
    response_input,
    view_to_pb,
)
from server.protocol.errors import (
    Busy,
    Conflicted,
    EventIdReused,
    EventInvalid,
    FieldViolation,
    abort,
    status_code,
)
from server.rules.reload import LiveRules
from server.store.redis_store import Store
from server.store.timers import TimerIndex

Context = grpc.aio.ServicerContext[object, object]
log = logging.getLogger(__name__)

# Messages of one DecideStream decided ahead of their answers (16 streams of 4 in flight here:
# about 12 % more events answered than deciding each after the last was answered).
STREAM_READ_AHEAD = 8


class JourneyService(pb_grpc.JourneyServiceServicer):
    def __init__(self, settings: Settings, live: LiveRules, store: Store, decider: Decider) -> None:
        self._settings = settings
        self._live = live
        self._rules = live.active
        self._store = store
        self._decider = decider
        self._timers = TimerIndex(store)
        self._identification = Identification(
            live.active, store, decider.stats, decider.retry_policy, decider.breaker
        )

    async def Decide(self, request: pb.DecideRequest, context: Context) -> pb.DecideResponse:
        try:
            valid = decide_input(request, self._decider.now_ms(), self._settings)
            decision = await self._decider.decide(valid, context.time_remaining())
        except JourneymanError as error:
            await abort(context, error)
        return pb.DecideResponse(decision=decision)

    async def DecideStream(
        self, requests: AsyncIterator[pb.DecideStreamRequest], context: Context
    ) -> AsyncIterator[pb.DecideStreamResponse]:
        # Messages are read ahead of the answers, up to STREAM_READ_AHEAD, each decided as it
        # comes, so that a stream's events share batches as concurrent calls do; they reach the
        # decider in request order (which applies one customer's events in order) and are
        # answered in it.
        decided: asyncio.Queue[asyncio.Future[pb.DecideStreamResponse] | None]
        decided = asyncio.Queue(STREAM_READ_AHEAD)

        async def read() -> None:
            try:
                async for message in requests:
                    await decided.put(asyncio.ensure_future(self._stream_answer(message, context)))
            finally:
                await decided.put(None)  # the stream ended, or reading it failed: see `reader`

        reader = asyncio.ensure_future(read())
        try:
            while (answer := await decided.get()) is not None:
                yield await answer
            await reader  # raises what ended the reading, if it failed
        finally:
            reader.cancel()
            while not decided.empty():  # the caller left, or a message aborted the stream
                left = decided.get_nowait()
                if left is not None:
                    left.cancel()

    async def _stream_answer(
        self, message: pb.DecideStreamRequest, context: Context
    ) -> pb.DecideStreamResponse:
        answer = pb.DecideStreamResponse()
        try:
            valid = decide_input(message.request, self._decider.now_ms(), self._settings)
            answer.decision.CopyFrom(await self._decider.decide(valid, context.time_remaining()))
        except EVENT_ERRORS as error:
            _fail(answer, error)  # this message fails alone: the stream goes on
        except JourneymanError as error:
            await abort(context, error)
        return answer

    async def DecideBatch(
        self, request: pb.DecideBatchRequest, context: Context
    ) -> pb.DecideBatchResponse:
        if len(request.requests) > self._settings.max_batch:
            limit, count = self._settings.max_batch, len(request.requests)
            violation = FieldViolation("requests", f"has {count}; send at most {limit}")
            await abort(context, EventInvalid([violation]))
        results = [pb.BatchResult(index=i) for i in range(len(request.requests))]
        valid, positions = self._valid_items(request, results)
        outcomes = await self._decider.decide_batch(valid, context.time_remaining())
        for index, outcome in zip(positions, outcomes, strict=True):
            if isinstance(outcome, EVENT_ERRORS):
                _fail(results[index], outcome)
            elif isinstance(outcome, JourneymanError):
                await abort(context, outcome)
            else:
                _answer(results[index], outcome)
        not_stored = sum(1 for result in results if result.error_code)
        return pb.DecideBatchResponse(results=results, not_stored=not_stored)

    def _valid_items(
        self, request: pb.DecideBatchRequest, results: list[pb.BatchResult]
    ) -> tuple[list[DecideInput], list[int]]:
        """The batch's valid events and their indexes; each invalid one's result says why."""
        now_ms = self._decider.now_ms()
        valid, positions = [], []
        for index, item in enumerate(request.requests):
            try:
                valid.append(decide_input(item, now_ms, self._settings))
                positions.append(index)
            except EventInvalid as error:
                _fail(results[index], error)
        return valid, positions

    async def GetCustomer(
        self, request: pb.GetCustomerRequest, context: Context
    ) -> pb.GetCustomerResponse:
        try:
            customer = customer_id_input(request.customer_id)
            as_of_ms = as_of_input(request.as_of_ms, self._decider.now_ms(), self._settings)
            loaded = await self._store.load(customer_id=customer)
            state = decode_or_new(self._rules().ruleset, loaded.state)
        except JourneymanError as error:
            await abort(context, error)
        view = self._view(customer, state, as_of_ms)
        return pb.GetCustomerResponse(customer=view, known=loaded.state is not None)

    async def ForgetCustomer(
        self, request: pb.ForgetCustomerRequest, context: Context
    ) -> pb.ForgetCustomerResponse:
        try:
            customer = customer_id_input(request.customer_id)
            forgotten = await self._store.forget(customer_id=customer)
        except JourneymanError as error:
            await abort(context, error)
        state = None
        ruleset = self._rules().ruleset
        if forgotten.state is not None:
            try:
                state = decode_or_new(ruleset, forgotten.state)
            except StateFromNewerServer:
                pass  # deleting needs no reading: forgotten all the same, but not counted
        if state is not None:
            self._decider.stats.count_moves(ruleset, state, None)
        elif forgotten.state is not None or forgotten.unread:
            # The stage counts still hold this customer: said, not hidden.
            log.warning(
                "forgot a customer whose state this server could not read (a newer journeyman's, "
                "or Redis failed before its layout was read): the journey's stage counts still "
                "hold them (one customer too many)"
            )
        return pb.ForgetCustomerResponse(deleted_keys=forgotten.deleted)

    async def RecordResponse(
        self, request: pb.RecordResponseRequest, context: Context
    ) -> pb.RecordResponseResponse:
        try:
            ruleset = self._rules().ruleset
            valid = response_input(request, self._decider.now_ms(), self._settings, ruleset)
            decision = await self._decider.decide(valid, context.time_remaining())
        except JourneymanError as error:
            await abort(context, error)
        return pb.RecordResponseResponse(decision=decision)

    async def GetActionReport(
        self, request: pb.GetActionReportRequest, context: Context
    ) -> pb.GetActionReportResponse:
        try:
            return await action_report(
                self._store, self._rules().ruleset, request, self._decider.now_ms(),
                max_days=self._settings.stats_retention_days,
            )  # fmt: skip
        except JourneymanError as error:
            await abort(context, error)

    async def GetJourneyStats(
        self, request: pb.GetJourneyStatsRequest, context: Context
    ) -> pb.GetJourneyStatsResponse:
        try:
            return await journey_stats(
                self._store, self._rules().ruleset, request, self._decider.now_ms(),
                max_days=self._settings.stats_retention_days,
            )  # fmt: skip
        except JourneymanError as error:
            await abort(context, error)

    async def Subscribe(
        self, request: pb.SubscribeRequest, context: Context
    ) -> AsyncIterator[pb.SubscribeResponse]:
        try:
            async for response in follow(self._timers, request):
                yield response
        except JourneymanError as error:
            await abort(context, error)

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
            refused_reason=self._live.refused_reason,
            refused_at_ms=self._live.refused_at_ms,
        )  # fmt: skip

    async def Identify(self, request: pb.IdentifyRequest, context: Context) -> pb.IdentifyResponse:
        try:
            customer = customer_id_input(request.customer_id)
            anonymous_id, traits = identify_input(request, self._settings)
            state, merged = await self._identification.identify(customer, anonymous_id, traits)
        except JourneymanError as error:
            await abort(context, error)
        if not caller_may("read"):
            # Identify is a `decide` call: it says what it did, the profile needs `read`.
            return pb.IdentifyResponse(merged=merged)
        return pb.IdentifyResponse(customer=self._view(customer, state), merged=merged)

    def _view(
        self, customer: str, state: CustomerState, as_of_ms: int | None = None
    ) -> pb.CustomerView:
        """The customer view at `as_of_ms` (default now)."""
        ruleset = self._rules().ruleset
        at_ms = self._decider.now_ms() if as_of_ms is None else as_of_ms
        return view_to_pb(customer, customer_view(ruleset, state, at_ms), ruleset.version)


# The errors that fail one event of a stream or a batch and leave the others be.
EVENT_ERRORS = (EventInvalid, Busy, Conflicted, EventIdReused, StateFromNewerServer)
NOT_STORED_DEGRADED = (
    "not stored: Redis could not be reached; the decision is from the rules alone (degraded);"
    " send the event again, same event_id, once Redis is back"
)


def _answer(result: pb.BatchResult, decision: pb.Decision) -> None:
    result.decision.CopyFrom(decision)
    if decision.degraded:
        # Not stored: a bulk caller must not take it for applied.
        result.error_code = grpc.StatusCode.UNAVAILABLE.value[0]
        result.error_message = NOT_STORED_DEGRADED


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
