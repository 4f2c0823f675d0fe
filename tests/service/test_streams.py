"""DecideStream and DecideBatch over a real port and a real Redis: request order, one customer's
events applied in order, and a bad event failing alone."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import grpc
import pytest
from google.rpc import code_pb2

from journeyman.v1 import journeyman_pb2 as pb
from server.store.redis_store import CommitOutcome, CommitResult, ToCommit
from tests.conftest import Service

pytestmark = pytest.mark.service


def _request(event_id: str, customer: str, type_: str, **fields: object) -> pb.DecideRequest:
    event = pb.Event(event_id=event_id, customer_id=customer, type=type_, channel="web")
    return pb.DecideRequest(event=event, **fields)  # type: ignore[arg-type]


async def _journey(service: Service, customer: str) -> pb.CustomerJourney:
    request = pb.GetCustomerRequest(customer_id=customer)
    (journey,) = (await service.stub.GetCustomer(request)).customer.journeys
    return journey


# Each customer's path through the retail journey, one stage per event.
PATHS = {
    "ada": [("add_to_cart", "consideration"), ("checkout_started", "purchase")],
    "bob": [("product_view", "awareness"), ("product_view", "awareness"),
            ("product_view", "consideration")],
    "cy": [("purchase", "purchase"), ("purchase", "retention")],
}  # fmt: skip


def _interleaved() -> list[tuple[pb.DecideRequest, str]]:
    """Every customer's events, round robin, each with the stage it must lead to."""
    out = []
    for step in range(max(len(path) for path in PATHS.values())):
        for customer, path in PATHS.items():
            if step < len(path):
                type_, stage = path[step]
                out.append((_request(f"{customer}-{step}", customer, type_), stage))
    return out


async def test_decide_stream_answers_in_request_order_for_several_customers(
    service: Service,
) -> None:
    expected = _interleaved()
    stream = service.stub.DecideStream(
        (pb.DecideStreamRequest(request=request) for request, _ in expected), timeout=10
    )
    answers = [response.decision async for response in stream]
    assert [d.event_id for d in answers] == [r.event.event_id for r, _ in expected]
    assert [d.journeys[0].stage for d in answers] == [stage for _, stage in expected]
    assert await stream.code() is grpc.StatusCode.OK


async def test_decide_stream_answers_each_event_before_the_next_is_sent(service: Service) -> None:
    stream = service.stub.DecideStream(timeout=10)
    for request, stage in _interleaved():
        await stream.write(pb.DecideStreamRequest(request=request))
        answer = (await stream.read()).decision
        assert (answer.event_id, answer.journeys[0].stage) == (request.event.event_id, stage)
    await stream.done_writing()
    assert await stream.code() is grpc.StatusCode.OK


async def test_a_bad_event_in_a_decide_stream_fails_alone_and_the_stream_goes_on(
    service: Service,
) -> None:
    requests = [
        _request("s1", "dee", "add_to_cart"),
        _request("", "dee", "product_view"),
        _request("s3", "dee", "checkout_started"),
    ]
    stream = service.stub.DecideStream(
        (pb.DecideStreamRequest(request=r) for r in requests), timeout=10
    )
    answers = [response async for response in stream]
    assert await stream.code() is grpc.StatusCode.OK
    assert [a.decision.event_id for a in answers] == ["s1", "", "s3"]
    bad = answers[1]
    assert bad.error_code == code_pb2.INVALID_ARGUMENT and not bad.HasField("decision")
    assert [v.field for v in bad.field_violations] == ["event.event_id"]
    assert bad.field_violations[0].description in bad.error_message
    assert not answers[0].error_code and not answers[2].error_code
    assert answers[2].decision.journeys[0].stage == "purchase"
    assert (await _journey(service, "dee")).stage == "purchase"


async def test_decide_batch_applies_one_customers_events_in_order(service: Service) -> None:
    requests = [
        _request("b0", "eli", "add_to_cart"),
        _request("b1", "eli", "checkout_started"),
        _request("b2", "eli", "purchase"),
        _request("b3", "eli", "purchase"),
    ]
    response = await service.stub.DecideBatch(pb.DecideBatchRequest(requests=requests))
    moves = [(r.decision.journeys[0].previous_stage, r.decision.journeys[0].stage)
             for r in response.results]  # fmt: skip
    # Each event sees the state the one before it left.
    assert moves == [
        ("awareness", "consideration"),
        ("consideration", "purchase"),
        ("purchase", "purchase"),
        ("purchase", "retention"),
    ]
    journey = await _journey(service, "eli")
    assert journey.stage == "retention" and journey.counters["purchases_365d"] == 2


async def test_decide_batch_keeps_each_customers_order_when_customers_interleave(
    service: Service,
) -> None:
    expected = _interleaved()
    response = await service.stub.DecideBatch(
        pb.DecideBatchRequest(requests=[request for request, _ in expected])
    )
    assert [r.index for r in response.results] == list(range(len(expected)))
    assert [r.decision.event_id for r in response.results] == [
        r.event.event_id for r, _ in expected
    ]
    assert [r.decision.journeys[0].stage for r in response.results] == [s for _, s in expected]


async def test_a_bad_event_in_a_batch_fails_alone_with_its_index(service: Service) -> None:
    requests = [
        _request("g0", "fin", "add_to_cart"),
        _request("g1", "fin{x}", "product_view"),
        _request("g2", "fin", "checkout_started"),
        _request("g3", "gil", "product_view", top_k=-1),
        _request("g4", "gil", "product_view"),
    ]
    response = await service.stub.DecideBatch(pb.DecideBatchRequest(requests=requests))
    results = list(response.results)
    assert [r.index for r in results] == [0, 1, 2, 3, 4]
    failed = {r.index: r for r in results if r.error_code}
    assert set(failed) == {1, 3}
    assert {r.error_code for r in failed.values()} == {code_pb2.INVALID_ARGUMENT}
    assert "event.customer_id" in failed[1].error_message
    assert "top_k" in failed[3].error_message
    # Each failed item says what is wrong with which field, as Decide's BadRequest does.
    for result in failed.values():
        assert result.field_violations
        for violation in result.field_violations:
            assert violation.description and violation.description in result.error_message
    assert [v.field for v in failed[1].field_violations] == ["event.customer_id"]
    assert response.not_stored == 2
    assert not any(r.HasField("decision") for r in failed.values())
    assert results[2].decision.journeys[0].previous_stage == "consideration"
    assert results[2].decision.journeys[0].stage == "purchase"
    assert (await _journey(service, "gil")).counters["product_views_7d"] == 1


async def test_a_batch_repeating_an_event_id_applies_it_once(service: Service) -> None:
    requests = [_request("r1", "hoa", "add_to_cart"), _request("r1", "hoa", "add_to_cart")]
    response = await service.stub.DecideBatch(pb.DecideBatchRequest(requests=requests))
    assert [r.decision.duplicate for r in response.results] == [False, True]
    assert (await _journey(service, "hoa")).counters["cart_adds_7d"] == 1


async def test_a_batch_over_the_limit_is_refused_whole(service: Service) -> None:
    too_many = service.settings.max_batch + 1
    requests = [_request(f"x{i}", "ivy", "product_view") for i in range(too_many)]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await service.stub.DecideBatch(pb.DecideBatchRequest(requests=requests))
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "requests" in (raised.value.details() or "")
    assert (await _journey(service, "ivy")).counters["product_views_7d"] == 0


async def test_an_empty_batch_answers_with_no_results(service: Service) -> None:
    response = await service.stub.DecideBatch(pb.DecideBatchRequest())
    assert list(response.results) == []


async def test_a_batch_for_many_customers_is_stored_in_full(service: Service) -> None:
    requests = [_request(f"m{i}", f"many-{i}", "add_to_cart") for i in range(150)]
    response = await service.stub.DecideBatch(pb.DecideBatchRequest(requests=requests))
    degraded = [r.index for r in response.results if r.decision.degraded]
    assert degraded == []
    assert response.not_stored == 0


async def test_a_batch_writes_each_customer_once_and_keeps_every_events_decision(
    service: Service,
) -> None:
    requests = [
        _request("w0", "jo", "add_to_cart"),
        _request("w1", "kim", "product_view"),
        _request("w2", "jo", "checkout_started"),
        _request("w3", "jo", "purchase"),
    ]
    store = service.running.store
    committed: list[str] = []
    commit_many = store.commit_many

    async def counting(
        commits: Sequence[ToCommit], *, layouts: Mapping[bytes, bytes]
    ) -> list[CommitResult]:
        results = await commit_many(commits, layouts=layouts)
        committed.extend(
            c.customer_id
            for c, r in zip(commits, results, strict=True)
            if r.outcome is CommitOutcome.COMMITTED
        )
        return results

    store.commit_many = counting  # type: ignore[method-assign]
    first = await service.stub.DecideBatch(pb.DecideBatchRequest(requests=requests))
    # One compare-and-set commit per customer, whatever its number of events.
    assert sorted(committed) == ["jo", "kim"]
    # Each event's own decision was kept: a retry of any one of them is answered with it.
    for request, original in zip(requests, first.results, strict=True):
        again = (await service.stub.Decide(request)).decision
        assert again.duplicate
        assert again.journeys == original.decision.journeys


async def test_an_event_id_reused_within_a_batch_for_another_event_is_refused_alone(
    service: Service,
) -> None:
    requests = [_request("u1", "lou", "add_to_cart"), _request("u1", "lou", "purchase")]
    response = await service.stub.DecideBatch(pb.DecideBatchRequest(requests=requests))
    assert not response.results[0].error_code
    assert response.results[1].error_code == code_pb2.ALREADY_EXISTS
    assert "u1" in response.results[1].error_message
    assert (await _journey(service, "lou")).counters["purchases_365d"] == 0


async def test_a_streams_messages_sent_together_are_decided_together(service: Service) -> None:
    """Messages are read ahead of the answers: those sent at once share the store's round trips,
    so a stream of 16 events makes fewer of them than the same 16 sent one after another."""
    pipeliner = service.running.store.pipelining
    if pipeliner is None:
        pytest.skip("round trips are counted on the pipeline, which a cluster does not use")

    def requests(name: str) -> list[pb.DecideRequest]:
        return [_request(f"{name}-{i}", f"{name}-{i}", "product_view") for i in range(16)]

    before = pipeliner.pipelines_sent
    for request in requests("alone"):
        await service.stub.Decide(request)
    one_after_another = pipeliner.pipelines_sent - before

    together = requests("together")
    before = pipeliner.pipelines_sent
    stream = service.stub.DecideStream(
        (pb.DecideStreamRequest(request=r) for r in together), timeout=10
    )
    answers = [response.decision async for response in stream]

    assert [a.event_id for a in answers] == [r.event.event_id for r in together]
    # The bound is measured, not fixed: how many round trips one decision makes is the store's
    # business, and on a loaded host fewer messages arrive while a round is out.
    assert pipeliner.pipelines_sent - before < one_after_another
