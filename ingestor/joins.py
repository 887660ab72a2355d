"""Run the persisted joins of a project after its tables changed."""

from __future__ import annotations

import logging

from catalog import Catalog, CatalogUnwritableError, JoinOutcome, join_plans
from config import Project
from ingestor.aggregate import CollectionAggregate

logger = logging.getLogger(__name__)

# The outcome of a join in a scan summary, in the words of a table's outcome.
_SCAN_OUTCOMES = {"built": "built", "unchanged": "unchanged", "skipped": "empty", "dropped": "empty", "error": "error"}


def run_joins(catalog: Catalog, project: Project) -> list[CollectionAggregate]:
    """Bring every persisted join of the project up to date; one failing join does not stop the others.

    A join whose sides' tables are as they were at its last run is left as it is, so
    calling this after every scan costs a few catalog reads per join.
    """
    results = []
    for plan in join_plans(project):
        tag = f"joined_{plan.name}"
        try:
            outcome = catalog.joins.run(plan)
        except CatalogUnwritableError:
            raise  # Not the join's fault: the whole scan pauses.
        except Exception:
            # The catalog itself failed (closed, disk full): the join keeps its table, and the next scan retries.
            logger.exception(
                "join %s (%s) of project %s failed; its previous table is kept", plan.name, plan.join_id, project.name
            )
            results.append(CollectionAggregate(collection_id=plan.join_id, tag=tag, outcome="error"))
            continue
        if outcome.changed:
            _log(project, outcome)
        results.append(
            CollectionAggregate(
                collection_id=plan.join_id,
                tag=tag,
                outcome=_SCAN_OUTCOMES[outcome.status.outcome],
                rows=outcome.status.rows,
                seconds=outcome.seconds,
            )
        )
    return results


def _log(project: Project, outcome: JoinOutcome) -> None:
    status = outcome.status
    if status.outcome == "built":
        logger.info(
            "join %s (%s) of project %s: table built, %d rows, %.2f s",
            outcome.name,
            outcome.join_id,
            project.name,
            status.rows,
            outcome.seconds,
        )
        if status.warning:
            logger.warning(
                "join %s (%s) of project %s: %s", outcome.name, outcome.join_id, project.name, status.warning
            )
        return
    if status.outcome == "error":
        logger.warning(
            "join %s (%s) of project %s failed, so its previous table, if any, is kept until the next change "
            "of its sides: %s",
            outcome.name,
            outcome.join_id,
            project.name,
            status.message,
        )
        return
    logger.info(
        "join %s (%s) of project %s: %s: %s",
        outcome.name,
        outcome.join_id,
        project.name,
        status.outcome,
        status.message,
    )
