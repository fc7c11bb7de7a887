"""``gateway worker`` and ``gateway deliveries …``: run delivery workers and look after their queue."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import click
import sqlalchemy as sa

from gateway.cli_support import cli_services, emit, fail, json_option, stop_on_signals, table
from gateway.delivery.queue import DEAD, PUSH_STATES
from gateway.store.tables import routes

COLUMNS = ["id", "document_id", "sender", "recipient", "adapter", "state", "attempts", "next_attempt_at", "last_error"]


@click.command()
@click.option("--batch", default=8, show_default=True, type=click.IntRange(1, 500), help="Routes claimed at a time.")
@click.option("--idle", default=2.0, show_default=True, type=click.FloatRange(0.1, 30), help="Seconds between polls.")
def worker(batch: int, idle: float) -> None:
    """Deliver queued documents through the recipients' adapters until stopped (SIGTERM or Ctrl-C).

    Run as many as you like, on as many hosts as share the database: they never take the same route.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = stop_on_signals()
    with cli_services() as svc:
        delivery_worker = svc.delivery_worker(batch=batch, idle_seconds=idle)
        wake = "Redis" if svc.config.redis_url else f"polling every {idle:g} s"
        click.echo(f"worker {delivery_worker.name} started ({wake}); Ctrl-C stops it after the current batch", err=True)
        handled, last_report = 0, time.monotonic()

        def report(claimed: int) -> None:
            nonlocal handled, last_report
            svc.ring.refresh()  # a `gateway keys rotate` elsewhere: sign delivery tokens with the new key
            reported = handled
            handled += claimed
            if handled != reported and time.monotonic() - last_report >= 60:
                click.echo(f"worker {delivery_worker.name}: {handled} routes handled so far", err=True)
                last_report = time.monotonic()

        delivery_worker.run(stop, report)
        click.echo(f"worker {delivery_worker.name} stopped after {handled} routes", err=True)


@click.group()
def deliveries() -> None:
    """Push deliveries: list them, see dead letters, retry."""


def _rows(states: tuple[str, ...], agency: str | None, limit: int) -> list[dict[str, Any]]:
    with cli_services() as svc:
        found: list[dict[str, Any]] = svc.deliveries.listing(states=states, agency=agency, limit=limit)
    return found


@deliveries.command("list")
@click.option("--state", "states", multiple=True, type=click.Choice(PUSH_STATES), help="Repeatable; default all.")
@click.option("--agency", help="Only routes to or from this agency code.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@json_option
def deliveries_list(states: tuple[str, ...], agency: str | None, limit: int, as_json: bool) -> None:
    """Push routes with their state, attempts and last error."""
    emit(_rows(states or PUSH_STATES, agency, limit), as_json, lambda rows: table(rows, COLUMNS))


@deliveries.command("dead-letters")
@click.option("--agency", help="Only routes to or from this agency code.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@json_option
def deliveries_dead_letters(agency: str | None, limit: int, as_json: bool) -> None:
    """Routes that ran out of attempts or were refused for good; `gateway deliveries retry` requeues them."""
    emit(_rows((DEAD,), agency, limit), as_json, lambda rows: table(rows, COLUMNS))


@deliveries.command("retry")
@click.argument("route_ids", nargs=-1, type=int)
@click.option("--all-dead", is_flag=True, help="Every dead-lettered route (with --agency: that agency's).")
@click.option("--agency", help="With --all-dead: only routes to or from this agency.")
@json_option
def deliveries_retry(route_ids: tuple[int, ...], all_dead: bool, agency: str | None, as_json: bool) -> None:
    """Queue dead-lettered routes again with a fresh attempt budget."""
    if not route_ids and not all_dead:
        fail("name route ids (see `gateway deliveries dead-letters`) or pass --all-dead")
    with cli_services() as svc:
        ids = list(route_ids) or [
            int(r["id"]) for r in svc.deliveries.listing(states=(DEAD,), agency=agency, limit=10_000)
        ]
        with svc.db.read() as conn:
            known = set(conn.execute(sa.select(routes.c.id).where(routes.c.id.in_(ids))).scalars()) if ids else set()
        requeued = svc.deliveries.retry(ids, actor="operator")
    unknown = sorted(set(ids) - known)
    skipped = sorted(known - set(requeued))
    emit(
        {"requeued": requeued, "not_dead": skipped, "unknown": unknown},
        as_json,
        lambda r: (
            f"requeued {len(r['requeued'])} route(s)"
            + (f"; not dead-lettered, left alone: {', '.join(map(str, r['not_dead']))}" if r["not_dead"] else "")
            + (
                f"; no such route: {', '.join(map(str, r['unknown']))} (see `gateway deliveries list`)"
                if r["unknown"]
                else ""
            )
        ),
    )
    if unknown:
        sys.exit(1)


@deliveries.command("health")
@click.option("--agency", help="Only this agency code.")
@json_option
def deliveries_health(agency: str | None, as_json: bool) -> None:
    """Ask each push agency's adapter whether its endpoint, folder or stream is reachable now."""
    import sqlalchemy as sa

    from gateway.store.tables import agencies

    with cli_services() as svc:
        with svc.db.read() as conn:
            query = sa.select(agencies.c.code, agencies.c.adapter).where(agencies.c.adapter != "inbox")
            found = conn.execute(query.where(agencies.c.code == agency) if agency else query).all()
        cache = svc.adapters()
        rows = []
        for row in found:
            ok, detail = cache.for_recipient(row.code).adapter.healthy()
            rows.append({"agency": row.code, "adapter": row.adapter, "healthy": ok, "detail": detail})
    emit(rows, as_json, lambda r: table(r, ["agency", "adapter", "healthy", "detail"]))
    if any(not r["healthy"] for r in rows):
        raise SystemExit(1)
