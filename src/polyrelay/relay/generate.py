"""The "generate" operation: a chat-like generation (OpenAI chat, Anthropic Messages, Gemini
generateContent), billed at the model's price for the usage the answer reports."""

from __future__ import annotations

from polyrelay.billing.estimate import estimate_prompt_tokens
from polyrelay.billing.ledger import Reservation
from polyrelay.billing.prices import Price, covered_output_tokens, max_cost_micros
from polyrelay.channels import Channel
from polyrelay.errors import GatewayError
from polyrelay.relay import convert_path, fast_path
from polyrelay.relay.gateway import Gateway
from polyrelay.relay.meter import Meter
from polyrelay.relay.operation import Job, Operation
from polyrelay.relay.replies import Reply, StreamReply
from polyrelay.store.keys import KeyRecord

MIN_OUTPUT_TOKENS = 16   # a request the balance cannot pay this much output for (with its prompt) is refused


async def reserve(gw: Gateway, key: KeyRecord, price: Price | None, job: Job) -> Reservation:
    """Hold the most the request may cost (at least 1 micro-dollar: a key with a quota needs a balance).

    A request with no output limit, on a key with a finite balance, gets one: the price's max_output,
    or what the balance covers if less (down to MIN_OUTPUT_TOKENS), set in `peek.upstream_max_output`
    and sent upstream, so the answer cannot cost more than was held. An explicit client limit is
    never lowered: if the balance cannot cover it, the request is refused (429).
    """
    peek = job.peek
    if price is not None and price.per_image is not None and not (price.input or price.output):
        raise _per_image_only(peek.model)
    prompt = estimate_prompt_tokens(job.body)
    output = peek.max_output if peek.max_output is not None else (price.max_output if price else 0)
    amount = max(1, max_cost_micros(price, prompt, output * peek.n))
    if key.quota_micros is None:
        return await gw.ledger.reserve(key, amount)   # nothing is held for an unlimited key
    # the refusal's wording is only formatted when the request is refused (lambdas, not f-strings)
    each = "" if peek.n == 1 else f" for each of {peek.n} answers"
    if peek.max_output is not None or price is None:
        return await gw.ledger.reserve(key, amount, what=lambda: f" (a prompt of about {prompt:,} tokens and "
                                                                 f"up to {output:,} output tokens{each})")
    least = min(price.max_output, MIN_OUTPUT_TOKENS)
    reservation = await gw.ledger.reserve(
        key, amount, minimum=max(1, max_cost_micros(price, prompt, least * peek.n)),
        what=lambda: f" at the least (a prompt of about {prompt:,} tokens and {least} output tokens{each})")
    peek.upstream_max_output = min(price.max_output, covered_output_tokens(price, prompt, reservation.amount, peek.n))
    return reservation


def _per_image_only(model: str) -> GatewayError:
    # a generation is billed per token: with no token rate it would be free
    return GatewayError(400, "invalid_request", f"model '{model}' is priced per image only, so it is served only as "
                        "an image request: the images API (/v1/images/generations, /v1/images/edits), Gemini's "
                        "generateContent with responseModalities IMAGE (not streamed), or chat when a channel lists "
                        "it in image_models", param="model")


async def _fast(gw: Gateway, job: Job, channel: Channel, meter: Meter) -> Reply | StreamReply:
    if channel.completion_only(meter.upstream_model or job.peek.model):   # e.g. gpt-3.5-turbo-instruct
        return await convert_path.completion_model(gw, job, channel, meter)
    return await fast_path.call(gw, job, channel, meter)


GENERATE = Operation("generate", reserve, fast=_fast, convert=convert_path.call)

__all__ = ["GENERATE", "MIN_OUTPUT_TOKENS", "reserve"]
