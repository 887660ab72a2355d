"""Plan the changes of an import, a save or a delete from the dashboards a project has.

Each plan is a pure function of the project's dashboards. `DashboardRepository.change_project`
runs it inside the write transaction, so the dashboards it reads are the ones it changes.

Imports follow what the Depictio CLI 1.19.2 expects of `POST /dashboards/import/yaml`:
- A main dashboard matches a main dashboard of the project, a child tab matches a tab of
  its parent. The dashboard imported earlier from the same `source_key` matches first,
  then one with the same title (with a `source_key`, only one that has none).
- Without `overwrite`, a match is a conflict (409). With `existing=replace` (or
  `overwrite`) the import replaces it; with `existing=keep` the import leaves it as it is
  and a multi-tab file adds only the tabs it lacks.
- `keep_titles` keeps the title of a replaced dashboard; `main_title` titles the main dashboard.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime

from litestar.exceptions import ClientException
from msgspec.structs import replace

from api.dashboard_documents import DashboardSpec, invalid
from catalog import ConflictError, DashboardChanges, DashboardRecord, NotFoundError


def new_dashboard_id() -> str:
    """Return a random 24-hex id, the ObjectId form that Depictio clients expect."""
    return secrets.token_hex(12)


@dataclass(frozen=True)
class ImportOptions:
    """The query of `POST /dashboards/import/yaml`."""

    overwrite: bool = False
    keep: bool = False
    source_key: str | None = None
    keep_titles: bool = False
    main_title: str | None = None
    parent_source_key: str | None = None


@dataclass
class ImportOutcome:
    status: str
    dashboard: DashboardRecord
    # The child tabs of a multi-tab file after the import, or None for a file of one dashboard.
    tabs: list[DashboardRecord] | None = None
    tabs_added: int | None = None


@dataclass
class ImportPlan:
    """The import of one dashboard file into one project, by one user at one time."""

    project_id: str
    user_id: str
    now: datetime
    options: ImportOptions
    changes: DashboardChanges = field(default_factory=DashboardChanges)

    def single(self, existing: list[DashboardRecord], spec: DashboardSpec) -> tuple[DashboardChanges, ImportOutcome]:
        """Plan the import of a file that contains one dashboard, a main dashboard or a child tab."""
        if self.options.main_title and not spec.is_main_tab:
            raise ClientException(
                f"main_title titles a main dashboard, but {spec.title!r} is a child tab; import it without main_title"
            )

        parent = None
        if spec.is_main_tab:
            candidates = [record for record in existing if record.is_main_tab]
        else:
            parent = self._parent(existing, spec)
            candidates = [record for record in existing if record.parent_id == parent.id]
        target = self._target(existing, candidates, spec.title, self.options.source_key)
        # A source_key found by key may name a main dashboard, which a tab must not replace.
        if parent is not None and target is not None and target.is_main_tab:
            raise invalid(
                f"tab {spec.title!r} would replace the main dashboard {target.title!r} ({target.id}); "
                "import the tab under another source_key"
            )

        if self.options.keep and target is not None:
            return self.changes, ImportOutcome("kept", self._keep(target))

        record = self._build(
            spec,
            target,
            title=self._title(spec.title, target, main=parent is None),
            parent_id=parent.id if parent else None,
            tab_order=spec.tab_order,
            source_key=self.options.source_key,
        )
        self.changes.put.append(record)
        return self.changes, ImportOutcome("replaced" if target else "created", record)

    def family(
        self, existing: list[DashboardRecord], main: DashboardSpec, tabs: list[DashboardSpec]
    ) -> tuple[DashboardChanges, ImportOutcome]:
        """Plan the import of a multi-tab file: its main dashboard, then its tabs in file order."""
        mains = [record for record in existing if record.is_main_tab]
        target = self._target(existing, mains, main.title, self.options.source_key)
        family = [record for record in existing if target is not None and record.parent_id == target.id]

        if self.options.keep and target is not None:
            kept = self._keep(target)
            added = self._add_missing_tabs(kept, family, tabs)
            all_tabs = [self._current(tab) for tab in family] + added
            return self.changes, ImportOutcome("kept", kept, tabs=all_tabs, tabs_added=len(added))

        record = self._build(
            main,
            target,
            title=self._title(main.title, target, main=True),
            parent_id=None,
            tab_order=0,
            source_key=self.options.source_key,
        )
        self.changes.put.append(record)
        written = []
        file_keys = set()
        for position, tab in enumerate(tabs, start=1):
            key = self._tab_key(tab)
            file_keys.add(key)
            found = self._tab_target(family, tab.title, key) if self.options.overwrite else None
            tab_record = self._build(
                tab,
                found,
                title=self._title(tab.title, found, main=False),
                parent_id=record.id,
                tab_order=position,
                source_key=key,
            )
            self.changes.put.append(tab_record)
            written.append(tab_record)

        # A tab that this file once had, and has no more, goes: it would stay beside its
        # replacement. Tabs added by other means carry no key of this file and stay.
        prefix = f"{self.options.source_key}#"
        if self.options.overwrite and self.options.source_key:
            written_ids = {tab_record.id for tab_record in written}
            for old in family:
                stale = (
                    old.source_key is not None and old.source_key.startswith(prefix) and old.source_key not in file_keys
                )
                if stale and old.id not in written_ids:
                    self.changes.delete.append(old.id)
        return self.changes, ImportOutcome("replaced" if target else "created", record, tabs=written)

    def _add_missing_tabs(
        self, main: DashboardRecord, family: list[DashboardRecord], tabs: list[DashboardSpec]
    ) -> list[DashboardRecord]:
        """Keep each tab that the family has, and add the file's other tabs after its last one."""
        next_order = max((tab.tab_order for tab in family), default=0) + 1
        added = []
        for tab in tabs:
            key = self._tab_key(tab)
            found = self._tab_target(family, tab.title, key)
            if found is not None:
                # Imported before sources were recorded: it takes its key now.
                if key is not None and found.source_key is None:
                    self.changes.put.append(replace(found, source_key=key))
                continue
            record = self._build(tab, None, title=tab.title, parent_id=main.id, tab_order=next_order, source_key=key)
            self.changes.put.append(record)
            added.append(record)
            next_order += 1
        return added

    def _tab_key(self, tab: DashboardSpec) -> str | None:
        """Return the source of a tab of a multi-tab file: the file's source and the tab's title in the file."""
        return f"{self.options.source_key}#{tab.title}" if self.options.source_key else None

    @staticmethod
    def _tab_target(family: list[DashboardRecord], title: str, key: str | None) -> DashboardRecord | None:
        if key is not None:
            for record in family:
                if record.source_key == key:
                    return record
        for record in family:
            if record.title == title and (key is None or record.source_key is None):
                return record
        return None

    def _target(
        self, existing: list[DashboardRecord], candidates: list[DashboardRecord], title: str, source_key: str | None
    ) -> DashboardRecord | None:
        """Return the dashboard that an import replaces or keeps, or raise ConflictError when it may do neither."""
        by_key = next((record for record in existing if source_key and record.source_key == source_key), None)
        if self.options.overwrite or self.options.keep:
            if by_key is not None:
                return by_key
            matches = (record for record in candidates if record.title == title)
            return next((record for record in matches if source_key is None or record.source_key is None), None)

        by_title = next((record for record in candidates if record.title == title), None)
        if by_title is not None:
            raise ConflictError(
                f"dashboard {title!r} already exists in this project ({by_title.id}); import with "
                "existing=replace (or overwrite=true) to replace it, or existing=keep to keep it"
            )
        if by_key is not None:
            raise ConflictError(
                f"dashboard {by_key.title!r} in this project ({by_key.id}) was imported from {source_key!r}; "
                "import with existing=replace (or overwrite=true) to replace it, or existing=keep to keep it"
            )
        return None

    def _parent(self, existing: list[DashboardRecord], spec: DashboardSpec) -> DashboardRecord:
        """Return the main dashboard of a child tab: by its source, by its title, or the tab's current one."""
        mains = [record for record in existing if record.is_main_tab]
        options = self.options
        current = next(
            (record.parent_id for record in existing if options.source_key and record.source_key == options.source_key),
            None,
        )
        lookups = [
            lambda record: options.parent_source_key is not None and record.source_key == options.parent_source_key,
            lambda record: record.title == spec.parent_title,
            lambda record: current is not None and record.id == current,
        ]
        for matches in lookups:
            parent = next((record for record in mains if matches(record)), None)
            if parent is not None:
                return parent
        raise invalid(
            f"the main dashboard {spec.parent_title!r} of tab {spec.title!r} is not in this project; "
            "import the main dashboard first, then its tabs"
        )

    def _title(self, file_title: str, target: DashboardRecord | None, main: bool) -> str:
        if main and self.options.main_title:
            return self.options.main_title
        if self.options.keep_titles and target is not None:
            return target.title
        return file_title

    def _keep(self, target: DashboardRecord) -> DashboardRecord:
        """Leave a dashboard as it is, but for `main_title` and a source it did not record yet."""
        kept = target
        if self.options.main_title and target.is_main_tab and self.options.main_title != target.title:
            kept = replace(kept, title=self.options.main_title, last_saved_ts=self.now, version=kept.version + 1)
        if self.options.source_key and kept.source_key is None:
            kept = replace(kept, source_key=self.options.source_key)
        if kept is not target:
            self.changes.put.append(kept)
        return kept

    def _current(self, record: DashboardRecord) -> DashboardRecord:
        """Return `record` as this plan writes it."""
        return next((item for item in self.changes.put if item.id == record.id), record)

    def _build(
        self,
        spec: DashboardSpec,
        target: DashboardRecord | None,
        *,
        title: str,
        parent_id: str | None,
        tab_order: int,
        source_key: str | None,
    ) -> DashboardRecord:
        return DashboardRecord(
            id=target.id if target else new_dashboard_id(),
            project_id=self.project_id,
            title=title,
            last_saved_ts=self.now,
            creation_time=target.creation_time if target else self.now,
            version=target.version + 1 if target else 1,
            is_main_tab=parent_id is None,
            parent_id=parent_id,
            tab_order=tab_order if parent_id is not None else 0,
            source_key=source_key or (target.source_key if target else None),
            created_by=target.created_by if target else self.user_id,
            definition=spec.definition,
        )


@dataclass(frozen=True)
class SaveRequest:
    """The body of `POST /dashboards/save/{dashboard_id}`, read by `api.controllers.dashboards`."""

    dashboard_id: str
    spec: DashboardSpec
    parent_id: str | None


def plan_save(
    existing: list[DashboardRecord], project_id: str, request: SaveRequest, user_id: str, now: datetime
) -> tuple[DashboardChanges, DashboardRecord]:
    """Plan a save: replace the dashboard with this id, or create it with this id."""
    current = next((record for record in existing if record.id == request.dashboard_id), None)
    parent = None
    if request.parent_id is not None:
        parent = next((record for record in existing if record.id == request.parent_id), None)
        if parent is None or not parent.is_main_tab or parent.id == request.dashboard_id:
            raise invalid(
                f"parent_dashboard_id {request.parent_id!r} is not a main dashboard of this project; "
                "name one, or save the dashboard as a main dashboard"
            )
        if any(record.parent_id == request.dashboard_id for record in existing):
            raise invalid(
                f"dashboard {request.dashboard_id!r} has child tabs, so it cannot become a tab; delete or move them first"
            )

    record = DashboardRecord(
        id=request.dashboard_id,
        project_id=project_id,
        title=request.spec.title,
        last_saved_ts=now,
        creation_time=current.creation_time if current else now,
        version=current.version + 1 if current else 1,
        is_main_tab=parent is None,
        parent_id=parent.id if parent else None,
        tab_order=request.spec.tab_order if parent else 0,
        source_key=current.source_key if current else None,
        created_by=current.created_by if current else user_id,
        definition=request.spec.definition,
    )
    return DashboardChanges(put=[record]), record


def plan_delete(existing: list[DashboardRecord], dashboard_id: str) -> tuple[DashboardChanges, list[str]]:
    """Plan the delete of a dashboard and of a main dashboard's child tabs, and return the tabs' ids."""
    if not any(record.id == dashboard_id for record in existing):
        raise NotFoundError("dashboard", dashboard_id)
    tabs = [record.id for record in existing if record.parent_id == dashboard_id]
    return DashboardChanges(delete=[*tabs, dashboard_id]), tabs
