"""A standard :mod:`logging` handler that writes into QGIS's message log."""

from __future__ import annotations

import logging

from qgis.core import Qgis, QgsMessageLog

#: The tab of the Log Messages panel that the plugin writes to.
LOG_TAG = "openEO Tile Jobs"
#: Parent logger of every module of the plugin.
LOGGER_NAME = __name__.split(".")[0]

_LEVELS = (
    (logging.ERROR, Qgis.MessageLevel.Critical),
    (logging.WARNING, Qgis.MessageLevel.Warning),
    (logging.INFO, Qgis.MessageLevel.Info),
)


class QgsMessageLogHandler(logging.Handler):
    """Sends log records to the "openEO Tile Jobs" tab; safe from any thread."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            level = next(
                (qgis_level for py_level, qgis_level in _LEVELS if record.levelno >= py_level), Qgis.MessageLevel.Info
            )
            QgsMessageLog.logMessage(message, LOG_TAG, level, notifyUser=False)
        except Exception:  # noqa: BLE001 (a log handler must never raise)
            self.handleError(record)


#: QGIS's log shows each line's level itself ("INFO", "WARNING"): the text must not repeat it.
LOG_FORMAT = "%(name)s: %(message)s"


def install_handler(logger_name: str = LOGGER_NAME) -> QgsMessageLogHandler:
    """Attach a handler to the plugin's logger and return it (for :func:`remove_handler`).

    One handler per logger: a handler left by an earlier load of the plugin is replaced.
    """
    logger = logging.getLogger(logger_name)
    for old in [h for h in logger.handlers if type(h).__name__ == QgsMessageLogHandler.__name__]:
        logger.removeHandler(old)
    handler = QgsMessageLogHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    return handler


def install_stderr_handler(logger_name: str = LOGGER_NAME) -> logging.Handler:
    """Warnings also on stderr (``qgis_process`` prints no message log: its users read stderr)."""
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s " + LOG_FORMAT))
    logging.getLogger(logger_name).addHandler(handler)
    return handler


def remove_handler(handler: logging.Handler, logger_name: str = LOGGER_NAME) -> None:
    logging.getLogger(logger_name).removeHandler(handler)
