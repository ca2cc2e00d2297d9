"""Step 4, Process: which process every tile runs, and its parameters.

The definition is fetched off the main thread (:func:`core.jobspec.resolve_process`),
then a form is generated from the parameter schemas; the geometry parameter is picked
automatically and can be overridden.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from qgis.core import Qgis
from qgis.gui import QgsFileWidget
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QButtonGroup,
    QGroupBox,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from ..core import jobspec
from ..core.backends import Backend, BackendProfile, make_session
from . import param_schema as ps
from . import settings
from .i18n import translator
from .param_form import ParameterForm
from .proxies import qgis_proxies
from .tasks import run_in_background
from .widgets import ElidingComboBox, FieldMessage, WrapLabel, add_field, button_row, hint, new_form, tooltip_shows_text

tr = translator("ProcessPage")
log = logging.getLogger(__name__)

SOURCE_NAMESPACE = "namespace"
SOURCE_PROCESS_ID = "process_id"
SOURCE_FILE = "file"


def parameter_dicts(parameters) -> list[dict[str, Any]]:
    """openeo ``Parameter`` tuples -> the dicts :mod:`.param_schema` reads."""
    out = []
    for p in parameters:
        data: dict[str, Any] = {
            "name": p.name,
            "description": p.description or "",
            "schema": p.schema.schema,
            "optional": bool(p.optional),
        }
        if p.has_default():
            data["default"] = p.default
        out.append(data)
    return out


class ProcessPage(QWidget):
    definitionLoaded = pyqtSignal()
    #: Why the process cannot run per tile ("" when it can): Start is disabled meanwhile.
    refused = pyqtSignal(str)
    message = pyqtSignal(str, int)

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        #: Returns the backend profiles (for describing a backend process); set by the dock.
        self.profiles: Callable[[], list[BackendProfile]] = list
        #: Returns credentials for a profile on the main thread's snapshot; set by the dock.
        self.credentials_for: Optional[Callable[[list[BackendProfile]], Any]] = None
        self.resolved: Optional[jobspec.ResolvedProcess] = None
        self.fields: list[ps.FieldSpec] = []
        self._task = None
        self._spec_loaded: Optional[dict] = None
        self.refusal = ""  #: why the loaded process cannot be tiled, shown in the Process step

        layout = QVBoxLayout(self)
        layout.addWidget(
            hint(
                tr("The process every tile runs. Its parameters are the same for all tiles,")
                + " "
                + tr("except the geometry, which is each tile's own.")
            )
        )
        source = QGroupBox(tr("Process"))
        form = new_form()
        source.setLayout(form)
        self.source_namespace = QRadioButton(tr("URL of a process definition"))
        self.source_process_id = QRadioButton(tr("Process of a backend"))
        self.source_file = QRadioButton(tr("Process graph file"))
        group = QButtonGroup(self)
        for button in (self.source_namespace, self.source_process_id, self.source_file):
            group.addButton(button)
            form.addRow(button)
            button.toggled.connect(self._source_changed)
        self.namespace = QLineEdit()
        self.namespace.setPlaceholderText("https://…/process.json")
        self.namespace_message = add_field(form, tr("URL"), self.namespace)
        self.process_id = QLineEdit()
        self.process_id.setPlaceholderText(tr("e.g. cloud_free_composite"))
        self.process_id_message = add_field(form, tr("Process id"), self.process_id)
        self.backend = ElidingComboBox()
        self.backend_message = add_field(form, tr("Describe on"), self.backend)
        self.graph_file = QgsFileWidget()
        self.graph_file.setFilter(tr("Process graph (*.json)"))
        self.graph_file_message = add_field(form, tr("File"), self.graph_file)
        for field in (self.namespace, self.process_id, self.graph_file):
            tooltip_shows_text(field)
        self.load_button = QPushButton(tr("Load definition"))
        self.demo_button = QPushButton(tr("Demo process"))
        self.demo_button.setToolTip(tr("The cloud-free composite of the Local demo backend"))
        form.addRow(button_row(self.load_button, self.demo_button))
        self.load_message = FieldMessage()
        form.addRow(self.load_message)
        layout.addWidget(source)

        self.params_box = QGroupBox(tr("Parameters"))
        column = QVBoxLayout(self.params_box)
        self.summary = WrapLabel(tr("Load a process definition to see its parameters."))
        column.addWidget(self.summary)
        geometry_form = new_form()
        self.geometry_combo = ElidingComboBox()
        self.geometry_message = add_field(
            geometry_form, tr("Tile geometry goes to"), self.geometry_combo, tr("The parameter filled per tile")
        )
        column.addLayout(geometry_form)
        self.form = ParameterForm()
        column.addWidget(self.form)
        layout.addWidget(self.params_box)
        layout.addStretch(1)

        self.load_button.clicked.connect(lambda: self.load_definition())
        self.demo_button.clicked.connect(lambda: self.use_demo_process())
        self.geometry_combo.currentIndexChanged.connect(self._geometry_changed)
        self._follow_inputs()
        self._restore()

    # sources ----------------------------------------------------------------------
    def source(self) -> str:
        if self.source_process_id.isChecked():
            return SOURCE_PROCESS_ID
        if self.source_file.isChecked():
            return SOURCE_FILE
        return SOURCE_NAMESPACE

    def set_source(self, source: str) -> None:
        buttons = {
            SOURCE_NAMESPACE: self.source_namespace,
            SOURCE_PROCESS_ID: self.source_process_id,
            SOURCE_FILE: self.source_file,
        }
        buttons.get(source, self.source_namespace).setChecked(True)

    def use_demo_process(self, on_done: Optional[Callable[[], None]] = None) -> bool:
        """Pick the Local demo backend's cloud-free composite (a namespace URL) and load it."""
        from . import local_demo

        backend = local_demo.running_backend()
        if backend is None:
            if not any(p.preset == local_demo.PRESET for p in self.profiles()):
                self.load_message.show_message(tr("Add the Local demo backend first (step Backends)."))
                return False
            # listed but not running (QGIS was restarted): start it, then pick its process
            self.summary.setText(tr("Starting the Local demo backend…"))
            self._task = run_in_background(
                tr("Starting the Local demo backend"),
                lambda _task: local_demo.local_backend_url(),
                lambda _url: self.use_demo_process(on_done),
                lambda error: self.load_message.show_message(str(error)),
            )
            return True
        self.set_source(SOURCE_NAMESPACE)
        self.namespace.setText(backend.demo_process_url)
        self.process_id.clear()
        self.load_definition(on_done)
        return True

    def _source_changed(self, *_: Any) -> None:
        source = self.source()
        self.namespace.setEnabled(source == SOURCE_NAMESPACE)
        self.process_id.setEnabled(source in (SOURCE_NAMESPACE, SOURCE_PROCESS_ID))
        self.backend.setEnabled(source == SOURCE_PROCESS_ID)
        self.graph_file.setEnabled(source == SOURCE_FILE)

    def refresh_backends(self) -> None:
        if self.load_message.has_message() and self.resolved is None:
            self.load_message.clear_message()  # e.g. "Add the Local demo backend first": the list changed
        current = self.backend.currentText()
        self.backend.clear()
        for profile in self.profiles():
            self.backend.addItem(profile.name)
        index = self.backend.findText(current)
        if index >= 0:
            self.backend.setCurrentIndex(index)

    def _restore(self) -> None:
        self.set_source(settings.value("process/source", SOURCE_NAMESPACE, str) or SOURCE_NAMESPACE)
        self.namespace.setText(settings.value("process/namespace", "", str))
        self.process_id.setText(settings.value("process/process_id", "", str))
        self.graph_file.setFilePath(settings.value("process/file", "", str))
        self._source_changed()

    def _remember(self) -> None:
        settings.set_value("process/source", self.source())
        settings.set_value("process/namespace", self.namespace.text().strip())
        settings.set_value("process/process_id", self.process_id.text().strip())
        settings.set_value("process/file", self.graph_file.filePath().strip())
        if self.resolved is not None:
            settings.set_json_value("process/parameters", self.form.values())

    # loading ---------------------------------------------------------------------------
    def _namespace_problem(self) -> Optional[str]:
        if self.source() == SOURCE_NAMESPACE and not self.namespace.text().strip().startswith(("http://", "https://")):
            return tr("Enter the http(s) URL of a process definition.")
        return None

    def _process_id_problem(self) -> Optional[str]:
        if self.source() == SOURCE_PROCESS_ID and not self.process_id.text().strip():
            return tr("Enter the id of a process of the backend.")
        return None

    def _backend_problem(self) -> Optional[str]:
        if self.source() == SOURCE_PROCESS_ID and not self.backend.currentText():
            return tr("Add a backend first (step Backends).")
        return None

    def _graph_file_problem(self) -> Optional[str]:
        if self.source() == SOURCE_FILE and not self.graph_file.filePath().strip():
            return tr("Choose a process graph file.")
        return None

    def _follow_inputs(self) -> None:
        """Each shown message follows its field; the load message is about the inputs it was shown for."""
        fields = (
            (self.namespace_message, self.namespace.textChanged, self._namespace_problem),
            (self.process_id_message, self.process_id.textChanged, self._process_id_problem),
            (self.backend_message, self.backend.currentIndexChanged, self._backend_problem),
            (self.graph_file_message, self.graph_file.fileChanged, self._graph_file_problem),
        )
        for message, signal, problem in fields:
            message.follow(signal, problem)
            self.load_message.follow(signal, lambda: None)
        for button in (self.source_namespace, self.source_process_id, self.source_file):
            for message, _signal, problem in fields:
                message.follow(button.toggled, problem)
            self.load_message.follow(button.toggled, lambda: None)

    def _source_spec(self) -> Optional[jobspec.JobSpec]:
        """A JobSpec without parameters from the source fields, or None after showing messages."""
        checks = (
            (self.namespace_message, self._namespace_problem()),
            (self.process_id_message, self._process_id_problem()),
            (self.backend_message, self._backend_problem()),
            (self.graph_file_message, self._graph_file_problem()),
        )
        if not all([message.check(problem) for message, problem in checks]):
            return None
        source = self.source()
        try:
            if source == SOURCE_NAMESPACE:
                return jobspec.JobSpec(
                    namespace=self.namespace.text().strip(), process_id=self.process_id.text().strip() or None
                )
            if source == SOURCE_PROCESS_ID:
                return jobspec.JobSpec(process_id=self.process_id.text().strip())
            return jobspec.JobSpec(process_graph_file=self.graph_file.filePath().strip())
        except jobspec.JobSpecError as exc:
            self.load_message.show_message(str(exc))
            return None

    def load_definition(self, on_done: Optional[Callable[[], None]] = None) -> None:
        spec = self._source_spec()
        if spec is None:
            return
        self.load_message.clear_message()
        profile = None
        if spec.process_id and not spec.namespace:
            profile = next((p for p in self.profiles() if p.name == self.backend.currentText()), None)
        snapshot = self.credentials_for([profile]) if profile is not None and self.credentials_for else None
        proxies = qgis_proxies()
        self.load_button.setEnabled(False)
        self.summary.setText(tr("Loading the process definition…"))

        def work(_task) -> jobspec.ResolvedProcess:
            connection = None
            if profile is not None:
                provider = snapshot.provider if snapshot is not None else None
                connection = Backend(profile, provider, proxies).connect()
            return jobspec.resolve_process(spec, connection=connection, session=make_session(proxies))

        def done(resolved: jobspec.ResolvedProcess) -> None:
            self.load_button.setEnabled(True)
            self.show_definition(resolved)
            self._remember()
            if on_done:
                on_done()

        def failed(error: BaseException) -> None:
            self.load_button.setEnabled(True)
            self.summary.setText(tr("Load a process definition to see its parameters."))
            if isinstance(error, jobspec.NotTileableError):  # never run the process loaded before instead
                self.resolved = None
                self.form.set_fields([])
                self.geometry_combo.clear()
                self._set_refusal(str(error))
            self.load_message.show_message(str(error))
            self.message.emit(tr("Cannot load the process: {error}").format(error=error), Qgis.MessageLevel.Warning)

        self._task = run_in_background(tr("Loading the process definition"), work, done, failed)
        self._task_refs = (snapshot,)

    def _set_refusal(self, text: str) -> None:
        self.refusal = text
        self.refused.emit(text)

    def show_definition(self, resolved: jobspec.ResolvedProcess) -> None:
        self.resolved = resolved
        self._set_refusal("")
        self.load_message.clear_message()
        self.fields = ps.fields_from_parameters(parameter_dicts(resolved.parameters))
        geometry = resolved.geometry_parameter or ps.geometry_field(self.fields)
        self.geometry_combo.blockSignals(True)
        self.geometry_combo.clear()
        self.geometry_combo.addItem(tr("(none: every tile runs the same)"), None)
        takers = {p.name for p in resolved.parameters if jobspec.may_take_area(p)}
        for spec in self.fields:
            if spec.name in takers:  # not e.g. temporal_extent: the tile's area could not go there
                self.geometry_combo.addItem(spec.name, spec.name)
        self.geometry_combo.setCurrentIndex(max(0, self.geometry_combo.findData(geometry)))
        self.geometry_combo.blockSignals(False)
        self.form.set_fields(self.fields, geometry)
        stored = settings.json_value("process/parameters", {}) or {}
        self.form.set_values({k: v for k, v in stored.items() if k != geometry})
        count = len(self.fields)
        self.summary.setText(tr("{process}: {count} parameter(s).").format(process=resolved.process_id, count=count))
        self._geometry_changed()
        self.definitionLoaded.emit()

    def _geometry_changed(self, *_: Any) -> None:
        name = self.geometry_combo.currentData()
        self.form.set_geometry_parameter(name)
        if self.resolved is not None and name is None:
            self.geometry_message.show_message(tr("No parameter gets the tile: every tile would compute the same."))
        else:
            self.geometry_message.clear_message()

    # result --------------------------------------------------------------------------------
    def validate(self) -> bool:
        if self.resolved is None:
            self.load_message.show_message(self.refusal or tr("Load the process definition first."))
            return False
        ok = self.form.validate()
        if self.geometry_combo.currentData() is None:
            self.geometry_message.show_message(tr("Choose the parameter that receives each tile's geometry."))
            ok = False
        return ok

    def job_spec(self) -> Optional[jobspec.JobSpec]:
        """The JobSpec for the run, or None after showing what is wrong."""
        if not self.validate():
            return None
        spec = self._source_spec()
        if spec is None:
            return None
        spec.parameters = self.form.values()
        spec.geometry_parameter = self.geometry_combo.currentData()
        spec.definition = self.resolved.definition  # recorded with the run: a resume fetches nothing
        self._remember()
        return spec
