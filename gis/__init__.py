"""QGIS glue of openEO Tile Jobs: qgis.core only, no widgets.

Public API (what the panel, the demo and the Processing algorithms call):

``core.run_setup.make_scheduler(db_or_path, *, spec=None, profiles=None, output_dir=None,
credentials=None, proxies=None, refresh_token_sink=None, config=None, listeners=()) -> Scheduler``
    (in core, not here) The engine for a run file; missing pieces come from the run record
    (resume), given ones are recorded there.
``run_session.RunSession(path, project=None, *, name=None, results_mode=None ("layers" |
"mosaic" | "none"), labels=False, ramp="Viridis")``
    Main thread. Adds/finds the run's layer-tree group, tile layer (styled) and "Results"
    group. ``start(scheduler, *, interval=1.0, cancel_remote_jobs=False) -> RunTask``,
    ``cancel(cancel_remote_jobs=None)``, ``running``, ``layer``, ``group``, ``results``
    (ResultLayers), ``updater`` (TileLayerUpdater). Signals: statusChanged, resultStatusChanged,
    progressReported, costsChanged, logLine, needsSignIn, backendStateChanged, resultsShown,
    runEnded(outcome, DriveResult).
``run_task.RunTask(scheduler, name="", *, interval, mosaic=None, cancel_remote_jobs=False)``,
``run_task.start_task(task)``
    The QgsTask itself (RunSession uses it; scripts may too).
``run_loop.drive(scheduler, should_stop, *, interval, on_round, on_results, mosaic, on_mosaic, ...)``
    The one loop (Processing and the task); ``downloaded_results(db)``, ``cancel_remote_jobs(scheduler)``.
``tile_layer.add_tile_layer(path, name=None, project=None, labels=False) -> (layer, group)``,
``open_tile_layer``, ``find_tile_layer``, ``TileLayerUpdater(layer)``
``tile_style.apply_tile_style(layer, labels=False)``, ``set_labels(layer, enabled)``
``result_layers.ResultLayers(run_path, project=None, ramp=..., group=None)``: ``add_results({tile: [paths]})``,
``add_tile_results(tile, paths)``, ``show_mosaic(vrt_paths)``, ``layers(kind=None)``, ``remove_all()``;
``apply_s2_rgb_style(layer)``, ``apply_single_band_style(layer, range, ramp)``, ``style_result_layer(layer)``
``mosaic.MosaicBuilder(folder)``: ``add(paths)``, ``build() -> [vrt paths]``, ``current()``
``project.unfinished_runs(project=None) -> [RunInfo]``, ``runs_in_project``, ``ProjectRunsWatcher``
``auth.credentials_from_authcfg(authcfg, kind)``, ``native_libs.isolate_bundled_libraries()``
"""
