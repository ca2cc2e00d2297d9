"""Step 3, Backends: add, edit and remove backends; test the connection; sign in (OIDC device flow).

Profiles (no secrets) are remembered in QgsSettings; secrets go to QgsAuthManager
(:mod:`.credentials`). Every network call runs in a background task.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from qgis.core import Qgis
from qgis.gui import QgsAuthConfigSelect, QgsSpinBox
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QGroupBox,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core import backends as core_backends
from ..core.backends import (
    AUTH_BASIC,
    AUTH_NONE,
    AUTH_OIDC_CLIENT_CREDENTIALS,
    AUTH_OIDC_DEVICE,
    AUTH_OIDC_REFRESH_TOKEN,
    BackendConfigError,
    BackendProfile,
)
from . import credentials, local_demo, settings
from .device_flow import DeviceFlowBridge, DeviceFlowDialog, SignInCancelledError
from .i18n import translator
from .proxies import qgis_proxies
from .tasks import run_in_background
from .widgets import (
    ElidingComboBox,
    FieldMessage,
    WrapLabel,
    add_field,
    button_row,
    hint,
    narrow_combo,
    new_form,
    tooltip_shows_text,
)

tr = translator("BackendsPage")
log = logging.getLogger(__name__)

CDSE_FEDERATION_URL = "https://openeofed.dataspace.copernicus.eu"
PRESET_CUSTOM = "custom"
PRESET_LOCAL = local_demo.PRESET
PRESET_CDSE = "cdse"
SIGN_IN_TIMEOUT_S = 300.0


def auth_labels() -> dict[str, str]:
    return {
        AUTH_NONE: tr("None"),
        AUTH_BASIC: tr("User name and password (QGIS authentication)"),
        AUTH_OIDC_DEVICE: tr("Sign in with the browser (OIDC device code)"),
        AUTH_OIDC_REFRESH_TOKEN: tr("Stored refresh token (OIDC)"),
        AUTH_OIDC_CLIENT_CREDENTIALS: tr("Client id and secret (OIDC client credentials)"),
    }


class ConnectionReport:
    """What "Test connection" found out (worker thread -> main thread)."""

    def __init__(self, api_version: str, signed_in: Optional[bool], user: str = "", detail: str = "") -> None:
        self.api_version = api_version
        self.signed_in = signed_in  # None: the backend needs no sign-in
        self.user = user
        self.detail = detail


def test_connection(profile: BackendProfile, provider: Callable, proxies: Optional[dict[str, str]]) -> ConnectionReport:
    """Connect to the backend and authenticate without user interaction (runs in a worker thread)."""
    backend = core_backends.Backend(profile, provider, proxies)
    try:
        connection = backend.connect()
    except core_backends.SignInRequiredError as exc:
        version = backend.connection.capabilities().api_version() if backend.connection is not None else "?"
        return ConnectionReport(version, False, detail=str(exc))
    version = connection.capabilities().api_version()
    if profile.auth == AUTH_NONE:
        return ConnectionReport(version, None)
    user = ""
    try:
        user = str(connection.describe_account().get("user_id", ""))
    except Exception:  # noqa: BLE001 (not every backend describes the account)
        user = ""
    return ConnectionReport(version, True, user)


URL_PLACEHOLDER = "https://openeo.example.org"


class BackendsPage(QWidget):
    """The list of backends and the editor of one backend."""

    profilesChanged = pyqtSignal()
    message = pyqtSignal(str, int)

    def __init__(
        self,
        parent: Optional[QWidget] = None,
        local_backend_url: Optional[Callable[[], str]] = None,
        running_local_backend_url: Optional[Callable[[], Optional[str]]] = None,
    ):
        super().__init__(parent)
        #: Returns the URL of the Local demo backend, starting it if needed (set by the dock; a
        #: start takes a while, so it is called in a background task).
        self.local_backend_url = local_backend_url
        #: Returns its URL when it already runs, else None (cheap: called on the main thread).
        self.running_local_backend_url = running_local_backend_url
        self.profiles: list[BackendProfile] = self._load_profiles()
        self.reports: dict[str, ConnectionReport] = {}
        self.sign_in_dialog: Optional[DeviceFlowDialog] = None
        self._editing: Optional[str] = None  # name of the profile being edited, '' when adding
        self._tasks: list[Any] = []

        layout = QVBoxLayout(self)
        layout.addWidget(hint(tr("The openEO backends that run the tiles' jobs. The first one fills up first.")))
        self.list = QListWidget()
        self.list.setMinimumHeight(90)
        self.list.setMaximumHeight(160)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # long URLs elide ("…")
        layout.addWidget(self.list)
        self.add_button = QPushButton(tr("Add"))
        self.edit_button = QPushButton(tr("Edit"))
        self.remove_button = QPushButton(tr("Remove"))
        layout.addLayout(button_row(self.add_button, self.edit_button, self.remove_button))
        self.test_button = QPushButton(tr("Test connection"))
        self.sign_in_button = QPushButton(tr("Sign in"))
        layout.addLayout(button_row(self.test_button, self.sign_in_button))
        self.state_label = WrapLabel()
        self.state_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.state_label)
        self.list_message = FieldMessage()
        layout.addWidget(self.list_message)

        self.editor = QGroupBox(tr("Backend"))
        form = new_form()
        self.editor.setLayout(form)
        self.preset = ElidingComboBox()
        self.preset.addItem(tr("Custom"), PRESET_CUSTOM)
        local = tr("Local demo backend (synthetic Sentinel-2, {size:g} m pixels)").format(size=local_demo.pixel_size())
        self.preset.addItem(local, PRESET_LOCAL)
        self.preset.addItem(tr("Copernicus Data Space Ecosystem (openEO federation)"), PRESET_CDSE)
        add_field(form, tr("Preset"), self.preset)
        self.name = QLineEdit()
        self.name_message = add_field(form, tr("Name"), self.name)
        self.url = QLineEdit()
        self.url.setPlaceholderText(URL_PLACEHOLDER)
        self.url_message = add_field(form, tr("URL"), self.url)
        tooltip_shows_text(self.url)
        self.auth = ElidingComboBox()
        for key, label in auth_labels().items():
            self.auth.addItem(label, key)
        self.auth_message = add_field(form, tr("Authentication"), self.auth)
        self.authcfg = QgsAuthConfigSelect(None, "")
        for combo in self.authcfg.findChildren(QComboBox):
            # QGIS's own combo is otherwise as wide as its longest configuration name; QGIS resets the
            # combo's tooltip, so the whole name goes into the widget's
            narrow_combo(combo, chars=len("No Authentication"), tooltip=False)
            combo.currentTextChanged.connect(self.authcfg.setToolTip)
            self.authcfg.setToolTip(combo.currentText())
        self.authcfg_message = add_field(form, tr("Credentials"), self.authcfg)
        self.authcfg_hint = hint("")
        form.addRow(self.authcfg_hint)
        self.parallel = QgsSpinBox()
        self.parallel.setRange(1, 100)
        self.parallel.setClearValue(2)
        self.parallel.setValue(2)
        add_field(form, tr("Parallel jobs"), self.parallel, tr("Batch jobs running at once on this backend"))
        self.save_button = QPushButton(tr("Save"))
        self.cancel_button = QPushButton(tr("Cancel"))
        form.addRow(button_row(self.save_button, self.cancel_button))
        layout.addWidget(self.editor)
        self.editor.hide()
        layout.addStretch(1)

        self.add_button.clicked.connect(self.start_add)
        self.edit_button.clicked.connect(self.start_edit)
        self.remove_button.clicked.connect(self.remove_selected)
        self.save_button.clicked.connect(self.save_editor)
        self.cancel_button.clicked.connect(self.close_editor)
        self.test_button.clicked.connect(lambda: self.test_selected())
        self.sign_in_button.clicked.connect(lambda: self.sign_in_selected())
        self.preset.currentIndexChanged.connect(self._apply_preset)
        self.auth.currentIndexChanged.connect(self._auth_changed)
        self.list.currentRowChanged.connect(lambda _: self._selection_changed())
        self._follow_inputs()
        self._refresh_list()
        self._auth_changed()

    # persistence --------------------------------------------------------------------
    @staticmethod
    def _load_profiles() -> list[BackendProfile]:
        profiles = []
        for data in settings.json_value("backends", []) or []:
            try:
                profiles.append(BackendProfile.from_dict(data))
            except (BackendConfigError, TypeError) as exc:
                log.warning("Ignoring a stored backend: %s", exc)
        return profiles

    def _save_profiles(self) -> None:
        settings.set_json_value("backends", [p.to_dict() for p in self.profiles])
        self.profilesChanged.emit()

    # list ---------------------------------------------------------------------------
    def selected_profile(self) -> Optional[BackendProfile]:
        row = self.list.currentRow()
        return self.profiles[row] if 0 <= row < len(self.profiles) else None

    def profile(self, name: str) -> Optional[BackendProfile]:
        return next((p for p in self.profiles if p.name == name), None)

    def _refresh_list(self, select: Optional[str] = None) -> None:
        current = select or (self.selected_profile().name if self.selected_profile() else None)
        self.list.blockSignals(True)
        self.list.clear()
        for profile in self.profiles:
            item = QListWidgetItem(f"{profile.name} — {profile.url}")
            item.setToolTip(
                f"{profile.name} — {profile.url}\n"
                f"{auth_labels().get(profile.auth, profile.auth)}; {profile.parallel_jobs} parallel jobs"
            )
            self.list.addItem(item)
        self.list.blockSignals(False)
        names = [p.name for p in self.profiles]
        self.list.setCurrentRow(names.index(current) if current in names else (0 if names else -1))
        self._selection_changed()

    def _selection_changed(self) -> None:
        profile = self.selected_profile()
        has = profile is not None
        for button in (self.edit_button, self.remove_button, self.test_button):
            button.setEnabled(has)
        self.sign_in_button.setEnabled(has and profile.auth != AUTH_NONE)
        self.state_label.setText(self.describe_state(profile) if has else tr("Add a backend to run the jobs on."))

    def describe_state(self, profile: BackendProfile) -> str:
        report = self.reports.get(profile.name)
        if report is None:
            if credentials.has_stored_sign_in(profile):
                return tr("Not tested yet; a sign-in is stored.")
            return tr("Not tested yet.")
        if report.signed_in is None:
            signed = tr("no sign-in needed")
        elif report.signed_in:
            signed = tr("signed in as {user}").format(user=report.user) if report.user else tr("signed in")
        else:
            signed = tr("not signed in")
        text = tr("openEO API {version} · {signed}").format(version=report.api_version, signed=signed)
        if report.detail:
            text += f"\n{report.detail}"
        return text

    def remove_selected(self) -> None:
        profile = self.selected_profile()
        if profile is None:
            return
        self.profiles.remove(profile)
        self.reports.pop(profile.name, None)
        credentials.forget(profile.name)
        self._save_profiles()
        self._refresh_list()
        self.close_editor()

    # editor ---------------------------------------------------------------------------
    def start_add(self) -> None:
        self._editing = ""
        self.preset.setCurrentIndex(0)
        self.name.clear()
        self.url.clear()
        self.auth.setCurrentIndex(self.auth.findData(AUTH_NONE))
        self.authcfg.setConfigId("")
        self.parallel.setValue(2)
        self._clear_messages()
        self.editor.setTitle(tr("New backend"))
        self.editor.show()
        self.name.setFocus()

    def start_edit(self) -> None:
        profile = self.selected_profile()
        if profile is None:
            return
        self._editing = profile.name
        self.preset.blockSignals(True)  # show how it was made, without applying the preset's values again
        self.preset.setCurrentIndex(max(0, self.preset.findData(profile.preset or PRESET_CUSTOM)))
        self.preset.blockSignals(False)
        self.name.setText(profile.name)
        self.url.setText(profile.url)
        self.auth.setCurrentIndex(max(0, self.auth.findData(profile.auth)))
        self.authcfg.setConfigId(credentials.authcfg_of(profile.name))
        self.parallel.setValue(profile.parallel_jobs)
        self._clear_messages()
        self.editor.setTitle(tr("Edit backend"))
        self.editor.show()

    def close_editor(self) -> None:
        self._editing = None
        self.editor.hide()

    def _clear_messages(self) -> None:
        for message in (self.name_message, self.url_message, self.auth_message, self.authcfg_message):
            message.clear_message()

    def _start_local_backend(self) -> None:
        """Start the Local demo backend off the main thread; its URL fills the field when it is up."""
        self.url.setPlaceholderText(tr("Starting the Local demo backend…"))

        def done(url: str) -> None:
            self.url.setPlaceholderText(URL_PLACEHOLDER)
            if self.preset.currentData() == PRESET_LOCAL and not self.url.text():
                self.url.setText(url)

        def failed(exc: BaseException) -> None:
            self.url.setPlaceholderText(URL_PLACEHOLDER)
            self.url_message.show_message(tr("Cannot start the Local demo backend: {error}").format(error=exc))

        run_in_background(tr("Starting the Local demo backend"), lambda _task: self.local_backend_url(), done, failed)

    def _apply_preset(self) -> None:
        preset = self.preset.currentData()
        if preset == PRESET_LOCAL:
            self.name.setText(tr("Local demo"))
            self.url.setText((self.running_local_backend_url and self.running_local_backend_url()) or "")
            self.auth.setCurrentIndex(self.auth.findData(AUTH_OIDC_DEVICE))
            self.parallel.setValue(2)
            if not self.url.text() and self.local_backend_url is not None:
                self._start_local_backend()
        elif preset == PRESET_CDSE:
            self.name.setText(tr("CDSE federation"))
            self.url.setText(CDSE_FEDERATION_URL)
            self.auth.setCurrentIndex(self.auth.findData(AUTH_OIDC_DEVICE))
            self.parallel.setValue(2)

    def _auth_changed(self) -> None:
        kind = self.auth.currentData()
        uses_config = kind in credentials.USER_CONFIG_KINDS
        self.authcfg.setEnabled(uses_config)
        if kind == AUTH_BASIC:
            self.authcfg_hint.setText(tr("Choose or create a Basic configuration with your user name and password."))
        elif kind == AUTH_OIDC_CLIENT_CREDENTIALS:
            self.authcfg_hint.setText(
                tr("Choose or create a Basic configuration: client id as user name, client secret as password.")
            )
        elif kind in credentials.TOKEN_KINDS:
            self.authcfg_hint.setText(
                tr("Press 'Sign in' after saving: the refresh token is kept in QGIS's authentication database.")
            )
        else:
            self.authcfg_hint.setText("")

    def _name_problem(self) -> Optional[str]:
        name = self.name.text().strip()
        if not name:
            return tr("Give the backend a name.")
        if any(p.name == name for p in self.profiles if p.name != self._editing):
            return tr("Another backend already has this name.")
        return None

    def _url_problem(self) -> Optional[str]:
        url = self.url.text().strip()
        if not url:
            return tr("Enter the backend's URL.")
        try:
            core_backends.check_url(url)
        except core_backends.InsecureUrlError:
            return tr("Use https://: plain http:// would send your credentials unencrypted.")
        except BackendConfigError:
            return tr("Enter a URL like https://openeo.example.org")
        return None

    def _authcfg_problem(self) -> Optional[str]:
        if self.auth.currentData() in credentials.USER_CONFIG_KINDS and not self.authcfg.configId():
            return tr("Choose a QGIS authentication configuration.")
        return None

    def _follow_inputs(self) -> None:
        """Each shown message follows its field (and the list's message, the list)."""
        self.name_message.follow(self.name.textChanged, self._name_problem)
        self.url_message.follow(self.url.textChanged, self._url_problem)
        self.authcfg_message.follow(self.auth.currentIndexChanged, self._authcfg_problem)
        self.authcfg_message.follow(self.authcfg.selectedConfigIdChanged, self._authcfg_problem)
        self.list_message.follow(self.profilesChanged, lambda: None if self.profiles else self._no_backend())
        self.list_message.follow(
            self.list.currentRowChanged, lambda: None if self.selected_profile() else self._no_backend()
        )

    def _no_backend(self) -> str:
        return tr("Add at least one backend.") if not self.profiles else tr("Select a backend first.")

    def editor_profile(self) -> Optional[BackendProfile]:
        """The profile in the editor, or None after showing a message beside each bad field."""
        checks = (
            (self.name_message, self._name_problem()),
            (self.url_message, self._url_problem()),
            (self.authcfg_message, self._authcfg_problem()),
        )
        if not all([message.check(problem) for message, problem in checks]):
            return None
        preset = self.preset.currentData()
        return BackendProfile(
            name=self.name.text().strip(),
            url=self.url.text().strip(),
            auth=self.auth.currentData(),
            parallel_jobs=self.parallel.value(),
            preset=None if preset == PRESET_CUSTOM else preset,
        )

    def save_editor(self) -> Optional[BackendProfile]:
        profile = self.editor_profile()
        if profile is None:
            return None
        if self._editing:
            index = next(i for i, p in enumerate(self.profiles) if p.name == self._editing)
            old = self.profiles[index]
            self.profiles[index] = profile
            if old.name != profile.name or old.url != profile.url or old.auth != profile.auth:
                credentials.forget(old.name)
                self.reports.pop(old.name, None)
        else:
            self.profiles.append(profile)
        uses_config = profile.auth in credentials.USER_CONFIG_KINDS
        credentials.set_authcfg(profile.name, self.authcfg.configId() if uses_config else "")
        self._save_profiles()
        self.close_editor()
        self._refresh_list(select=profile.name)
        return profile

    # network ---------------------------------------------------------------------------
    def test_selected(self, on_done: Optional[Callable[[ConnectionReport], None]] = None) -> None:
        profile = self.selected_profile()
        if profile is None:
            self.list_message.show_message(self._no_backend())
            return
        self.list_message.clear_message()
        snapshot = credentials.CredentialSnapshot([profile], self)
        proxies = qgis_proxies()
        self.test_button.setEnabled(False)
        self.state_label.setText(tr("Connecting to {backend}…").format(backend=profile.name))

        def work(_task) -> tuple[BackendProfile, ConnectionReport]:
            ready = local_demo.ready_profile(profile)  # the Local demo backend: started again when needed
            return ready, test_connection(ready, snapshot.provider, proxies)

        def done(outcome: tuple[BackendProfile, ConnectionReport]) -> None:
            ready, report = outcome
            self.test_button.setEnabled(True)
            self.update_url(ready)
            self.reports[profile.name] = report
            self._selection_changed()
            level = Qgis.MessageLevel.Success if report.signed_in is not False else Qgis.MessageLevel.Warning
            self.message.emit(
                tr("{backend}: {state}").format(backend=profile.name, state=self.describe_state(profile)), level
            )
            if on_done:
                on_done(report)

        def failed(error: BaseException) -> None:
            self.test_button.setEnabled(True)
            self.reports.pop(profile.name, None)
            text = tr("Cannot connect to {backend}: {error}").format(backend=profile.name, error=error)
            self.state_label.setText(text)
            self.message.emit(self.state_label.text(), Qgis.MessageLevel.Warning)

        task = run_in_background(
            tr("Testing the connection to {backend}").format(backend=profile.name),
            work,
            done,
            failed,
        )
        self._tasks.append((task, snapshot))

    def sign_in_selected(self, timeout_s: float = SIGN_IN_TIMEOUT_S) -> None:
        """Sign in without blocking QGIS: the device-flow dialog shows while a task polls."""
        profile = self.selected_profile()
        if profile is None:
            self.list_message.show_message(self._no_backend())
            return
        if profile.auth not in (AUTH_OIDC_DEVICE, AUTH_OIDC_REFRESH_TOKEN):
            self.test_selected()
            return
        self.list_message.clear_message()
        snapshot = credentials.CredentialSnapshot([profile], self)
        proxies = qgis_proxies()
        bridge = DeviceFlowBridge(self)
        dialog = DeviceFlowDialog(profile.name, timeout_s, self)
        self.sign_in_dialog = dialog
        bridge.instructions.connect(dialog.show_instructions)
        dialog.rejected.connect(bridge.cancel)
        self.sign_in_button.setEnabled(False)
        dialog.show()
        device_profile = profile
        if profile.auth == AUTH_OIDC_REFRESH_TOKEN:
            # a stored token that no longer works is replaced through the device flow
            device_profile = BackendProfile.from_dict({**profile.to_dict(), "auth": AUTH_OIDC_DEVICE})

        def work(_task) -> ConnectionReport:
            sink = snapshot.sink
            backend = core_backends.Backend(device_profile, snapshot.provider, proxies, refresh_token_sink=sink)
            backend.sign_in(display=bridge.display, max_poll_time=timeout_s)
            connection = backend.connection
            user = ""
            try:
                user = str(connection.describe_account().get("user_id", ""))
            except Exception:  # noqa: BLE001
                user = ""
            return ConnectionReport(connection.capabilities().api_version(), True, user)

        def done(report: ConnectionReport) -> None:
            self.sign_in_button.setEnabled(True)
            self.reports[profile.name] = report
            dialog.finish(True)
            self._selection_changed()
            self.message.emit(tr("Signed in to {backend}.").format(backend=profile.name), Qgis.MessageLevel.Success)

        def failed(error: BaseException) -> None:
            self.sign_in_button.setEnabled(True)
            self._selection_changed()
            if isinstance(error, SignInCancelledError) or bridge.cancelled.is_set():
                self.message.emit(
                    tr("Sign-in to {backend} cancelled.").format(backend=profile.name), Qgis.MessageLevel.Info
                )
                return
            text = tr("Sign-in to {backend} failed: {error}").format(backend=profile.name, error=error)
            dialog.finish(False, text)
            self.message.emit(text, Qgis.MessageLevel.Warning)

        task = run_in_background(tr("Signing in to {backend}").format(backend=profile.name), work, done, failed)
        self._tasks.append((task, snapshot, bridge))

    def update_url(self, profile: BackendProfile) -> None:
        """Remember a backend's new URL (the Local demo backend came back on another port)."""
        index = next((i for i, p in enumerate(self.profiles) if p.name == profile.name), None)
        if index is not None and self.profiles[index].url != profile.url:
            self.profiles[index] = profile
            self._save_profiles()
            self._refresh_list(select=profile.name)

    def validate(self) -> bool:
        return self.list_message.check(None if self.profiles else self._no_backend())

    def close_down(self) -> None:
        for entry in self._tasks:
            for part in entry[2:]:
                part.cancel()
        if self.sign_in_dialog is not None:
            self.sign_in_dialog.close()
