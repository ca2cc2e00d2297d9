"""The OIDC device-flow dialog: verification URL (clickable) and user code, a countdown, Cancel.

The sign-in itself runs in a background task (:meth:`core.backends.Backend.sign_in`);
the openeo client reports the URL and code through a ``display`` callback, parsed by
:func:`parse_instructions`. Cancelling makes the next ``display`` call raise
:class:`SignInCancelledError`, which ends the client's polling loop.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional
from urllib.parse import parse_qs, urlparse

from qgis.PyQt.QtCore import QObject, Qt, QTimer, QUrl, pyqtSignal
from qgis.PyQt.QtGui import QDesktopServices, QFont, QGuiApplication
from qgis.PyQt.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .i18n import translator

tr = translator("DeviceFlowDialog")

_WITH_CODE = re.compile(r"Visit (\S+) and enter user code '([^']+)'")
_COMPLETE = re.compile(r"Visit (\S+) to authenticate")


@dataclass(frozen=True)
class DeviceInstructions:
    url: str
    user_code: Optional[str]


def parse_instructions(text: str) -> Optional[DeviceInstructions]:
    """URL and user code from the openeo client's device-flow instructions (None for progress lines)."""
    match = _WITH_CODE.search(text)
    if match:
        return DeviceInstructions(match.group(1), match.group(2))
    match = _COMPLETE.search(text)
    if match:
        url = match.group(1)
        codes = parse_qs(urlparse(url).query).get("user_code")
        return DeviceInstructions(url, codes[0] if codes else None)
    return None


class SignInCancelledError(Exception):
    """The user cancelled the device-flow sign-in."""


class DeviceFlowBridge(QObject):
    """Carries the client's ``display`` calls from the worker thread to the dialog."""

    instructions = pyqtSignal(str, str)  # url, user code ('' if only a complete URL)

    def __init__(self, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.cancelled = threading.Event()

    def display(self, text: str, *_, **__) -> None:
        """The ``display`` callback given to the openeo client (worker thread)."""
        if self.cancelled.is_set():
            raise SignInCancelledError()
        parsed = parse_instructions(str(text))
        if parsed is not None:
            self.instructions.emit(parsed.url, parsed.user_code or "")

    def cancel(self) -> None:
        self.cancelled.set()


class DeviceFlowDialog(QDialog):
    """Non-modal dialog showing the verification URL and user code while the worker polls."""

    def __init__(
        self,
        backend_name: str,
        timeout_s: float,
        parent: Optional[QWidget] = None,
        open_url: Callable[[QUrl], bool] = QDesktopServices.openUrl,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(tr("Sign in to {backend}").format(backend=backend_name))
        self.setModal(False)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        self._open_url = open_url
        self._deadline = time.monotonic() + timeout_s
        self._timeout_s = timeout_s
        self.url = ""
        self.user_code = ""

        layout = QVBoxLayout(self)
        self.intro = QLabel(tr("Waiting for the sign-in link from {backend}…").format(backend=backend_name))
        self.intro.setWordWrap(True)
        layout.addWidget(self.intro)
        self.link = QLabel()
        self.link.setTextFormat(Qt.TextFormat.RichText)
        self.link.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.link.setOpenExternalLinks(False)
        self.link.linkActivated.connect(lambda url: self._open_url(QUrl(url)))
        self.link.setWordWrap(True)
        layout.addWidget(self.link)
        code_row = QHBoxLayout()
        self.code_label = QLabel()
        font = QFont(self.code_label.font())
        font.setPointSizeF(font.pointSizeF() * 1.8)
        font.setBold(True)
        font.setStyleHint(QFont.StyleHint.Monospace)
        self.code_label.setFont(font)
        self.code_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        code_row.addWidget(self.code_label)
        self.copy_button = QPushButton(tr("Copy code"))
        self.copy_button.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.user_code))
        self.copy_button.hide()
        code_row.addWidget(self.copy_button)
        code_row.addStretch(1)
        layout.addLayout(code_row)
        self.countdown = QProgressBar()
        self.countdown.setRange(0, max(1, int(timeout_s)))
        self.countdown.setValue(int(timeout_s))
        self.countdown.setFormat(tr("%v s left"))
        layout.addWidget(self.countdown)
        self.status = QLabel(tr("QGIS keeps working while you sign in."))
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.cancel_button = buttons.button(QDialogButtonBox.StandardButton.Cancel)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._timer = QTimer(self)
        self._timer.setInterval(500)
        self._timer.timeout.connect(self._tick)
        self._timer.start()
        self.setMinimumWidth(440)

    def show_instructions(self, url: str, user_code: str) -> None:
        self.url, self.user_code = url, user_code
        self.intro.setText(tr("Open this page in your browser and sign in:"))
        shown = url.split("?", 1)[0]
        self.link.setText(f'<a href="{url}">{shown}</a>')
        self.link.setToolTip(url)
        if user_code:
            self.code_label.setText(user_code)
            self.copy_button.show()
            self.status.setText(tr("Enter the code above when the page asks for it. QGIS keeps working meanwhile."))
        self.adjustSize()

    def _tick(self) -> None:
        left = max(0, int(self._deadline - time.monotonic()))
        self.countdown.setValue(left)
        if left == 0:
            self._timer.stop()
            self.status.setText(tr("The sign-in timed out."))

    def finish(self, ok: bool, message: str = "") -> None:
        self._timer.stop()
        if ok:
            self.accept()
        else:
            self.status.setText(message)
            self.cancel_button.setText(tr("Close"))

    def done(self, result: int) -> None:
        self._timer.stop()
        super().done(result)
