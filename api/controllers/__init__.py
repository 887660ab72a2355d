"""Route handlers, one controller per Depictio resource."""

from api.controllers.artifacts import ArtifactController
from api.controllers.auth import AuthController
from api.controllers.backup import BackupController
from api.controllers.cli import CLIController
from api.controllers.dashboards import DashboardController
from api.controllers.datacollections import DataCollectionController, TableUploadController
from api.controllers.deltatables import DeltaTableController
from api.controllers.events import EventController
from api.controllers.exports import ExportController
from api.controllers.files import FileController
from api.controllers.health import health_live, health_ready
from api.controllers.metrics import metrics_route
from api.controllers.monitoring import MonitoringController
from api.controllers.projects import ProjectController
from api.controllers.runs import RunController
from api.controllers.scans import ScanController
from api.controllers.sql import SqlController
from api.controllers.tokens import TokenController
from api.controllers.users import UserController
from api.controllers.utils import UtilsController, health
from api.controllers.workflows import WorkflowController

CONTROLLERS = [
    ArtifactController,
    AuthController,
    CLIController,
    DashboardController,
    DataCollectionController,
    DeltaTableController,
    EventController,
    ExportController,
    FileController,
    MonitoringController,
    ProjectController,
    RunController,
    ScanController,
    SqlController,
    TokenController,
    UserController,
    UtilsController,
    WorkflowController,
    BackupController,
]
# Routes that take uploaded files; the app mounts them with the upload size limit.
UPLOAD_CONTROLLERS = [TableUploadController]

__all__ = ["CONTROLLERS", "UPLOAD_CONTROLLERS", "health", "health_live", "health_ready", "metrics_route"]
