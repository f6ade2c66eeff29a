"""``llmrelay probe``'s arguments, apart from the command (:mod:`.command`): the CLI
builds every command's parser, ``llmrelay serve``'s too, and the command's own imports
(aiohttp, rich, the history) have no place in a gateway's start."""

from __future__ import annotations

import argparse

COMMAND = "probe"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``probe`` subcommand and its ``history`` view."""
    p = sub.add_parser(
        COMMAND, help="try each provider's models through the gateway (docs/probe.md)"
    )
    p.add_argument("--config", help="YAML config file (probe settings, local gateway, history)")
    p.add_argument("--provider", action="append", help="only this provider (repeatable)")
    p.add_argument("--models", type=int, dest="models_count", help="models per provider (3)")
    p.add_argument("--model", action="append", help="exactly this model (repeatable)")
    p.add_argument("--stream", action="store_true", help="also a streamed answer")
    p.add_argument(
        "--capabilities",
        action="store_true",
        help="also tools, JSON mode, /v1/messages, /v1/responses, embeddings",
    )
    p.add_argument("--timeout", type=float, help="seconds per call (30)")
    p.add_argument("--concurrency", type=int, help="models in flight per provider (2)")
    p.add_argument("--json", dest="json_file", help="write the full report to this file")
    p.add_argument("--url", help="gateway URL (or LLMRELAY_URL); default: start a local one")
    p.add_argument("--key", help="virtual key (or LLMRELAY_API_KEY); needed with --url")
    p.add_argument("--no-history", action="store_true", help="do not store this run")
    hsub = p.add_subparsers(dest="probe_command")
    h = hsub.add_parser("history", help="success rate and p50/p95 latency per model")
    h.add_argument("--model", dest="history_model", help="only this model")
    h.add_argument("--days", type=float, default=30.0, help="window in days (30)")
    h.add_argument(
        "--by-day", action="store_true", help="one line per model and day (default with --model)"
    )
    h.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
