"""Secrets only when needed: the panel never makes QGIS ask for (or create) the master password
for a backend without sign-in, nor when QGIS starts with a sign-in stored (it is read at Start
or Sign in). QGIS asks through QgsCredentials; a counting instance records every request."""

from __future__ import annotations

import pytest
from qgis.core import QgsApplication, QgsCredentials, QgsProject, QgsSettings
from ui_helpers import ready_to_run

from openeo_tile_jobs.core.backends import BackendProfile
from openeo_tile_jobs.ui import credentials, local_demo, settings
from openeo_tile_jobs.ui.dock import TileJobsDock


class CountingCredentials(QgsCredentials):
    """Stands in for QGIS's password dialogs: records each request and declines it."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[str] = []

    def request(self, realm, username, password, message="", requestCredentials=True):  # noqa: N803
        self.requests.append(f"credentials for {realm}")
        return False, username, password

    def requestMasterPassword(self, password, stored=False):
        self.requests.append("master password")
        return False, password


_COUNTING: list[CountingCredentials] = []  # QGIS keeps a pointer to the instance: it must live on


@pytest.fixture()
def prompts(qgis_app):
    manager = QgsApplication.authManager()
    manager.clearMasterPassword()  # as at QGIS start
    if not _COUNTING:
        _COUNTING.append(CountingCredentials())
        _COUNTING[0].setInstance(_COUNTING[0])
    counting = _COUNTING[0]
    counting.requests.clear()
    QgsSettings().remove("openeo_tile_jobs")
    yield counting
    QgsSettings().remove("openeo_tile_jobs")
    local_demo.use_backend(None)


def test_local_demo_actions_never_ask_for_the_master_password(prompts, qgis_iface, qtbot, tmp_path, local_backend):
    manager = QgsApplication.authManager()
    # a backend signed in earlier (its token configuration id is remembered) and one never signed in
    signed_in = BackendProfile(name="Signed in", url=local_backend.url, auth="oidc_device")
    never = BackendProfile(name="Never signed in", url=local_backend.url, auth="oidc_device")
    settings.set_json_value("backends", [signed_in.to_dict(), never.to_dict()])
    settings.set_value("credentials/Signed_in/token_authcfg", "abc1234")

    dock = TileJobsDock(None, iface=qgis_iface)  # what QGIS start does
    try:
        page = dock.backends_page
        assert "a sign-in is stored" in page.state_label.text()
        assert prompts.requests == []

        page.list.setCurrentRow(1)  # Test connection of a backend never signed in
        page.test_selected()
        qtbot.waitUntil(lambda: "Never signed in" in page.reports, timeout=10_000)
        assert page.reports["Never signed in"].signed_in is False

        ready_to_run(dock, qtbot, local_backend, tmp_path)  # adds the Local demo backend, no sign-in
        page.list.setCurrentRow(2)
        page.test_selected()
        qtbot.waitUntil(lambda: "Local demo" in page.reports, timeout=10_000)
        assert page.reports["Local demo"].signed_in is None

        settings.set_json_value("backends", [page.profile("Local demo").to_dict()])
        dock.backends_page.profiles = [page.profile("Local demo")]
        controller = dock.run_controller
        assert controller.start(), dock.run_page.start_message.text()
        qtbot.waitUntil(lambda: controller.last_outcome is not None, timeout=60_000)
        assert controller.last_outcome == "done"
        assert prompts.requests == []
        assert not manager.masterPasswordIsSet()
    finally:
        dock.close_down()
        dock.deleteLater()
        QgsProject.instance().removeAllMapLayers()


def test_start_reads_a_stored_sign_in(prompts, qgis_app) -> None:
    """Lazily is not never: Start with a backend that has a stored sign-in reads it (QGIS asks once)."""
    profile = BackendProfile(name="Signed in", url="https://openeo.example.org", auth="oidc_device")
    settings.set_value("credentials/Signed_in/token_authcfg", "abc1234")
    snapshot = credentials.CredentialSnapshot([profile])
    assert prompts.requests == ["master password"]
    assert snapshot.provider(profile) is None  # declined: the run asks the user to sign in again
