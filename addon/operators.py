"""The extension's operators: add the face rig, render a pairs dataset, key a tracking file, animate
from a video (tracked in the background; ESC cancels), re-bake the tracking kept in the .blend."""
from dataclasses import fields

import bpy

from .properties import KEY_PROPS, VIDEO_GLOB


class AU2RIG_OT_add_face_rig(bpy.types.Operator):
    """Add the built-in bone-driven face rig, its channels driving the bones"""

    bl_idname = "au2rig.add_face_rig"
    bl_label = "Add au2rig Face Rig"
    bl_options = {'REGISTER', 'UNDO'}

    # properties as an explicit dict: Blender reads it the same, and linters do not mistake
    # the strings inside for forward annotations
    __annotations__ = {"name": bpy.props.StringProperty(name="Name", default="BDFM")}

    def execute(self, context):
        from . import rig_builder
        from ._core import RigSpecError, load_rig

        try:
            rig = load_rig()
        except RigSpecError as e:
            self.report({'ERROR'}, str(e))
            return {'CANCELLED'}
        arm_obj, _ = rig_builder.build_rig(rig, self.name, context.collection)
        for obj in context.selected_objects:
            obj.select_set(False)
        arm_obj.select_set(True)
        context.view_layer.objects.active = arm_obj
        return {'FINISHED'}


class AU2RIG_OT_render_pairs(bpy.types.Operator):
    """Render a (parameters, image) pairs dataset of the built-in rig (ESC cancels; run again to resume)"""

    bl_idname = "au2rig.render_pairs"
    bl_label = "Render Rig Pairs Dataset"
    bl_options = {'REGISTER'}

    __annotations__ = {
        "output": bpy.props.StringProperty(name="Output Folder", subtype='DIR_PATH', default="//pairs"),
        "count": bpy.props.IntProperty(name="Pairs", default=1000, min=1),
        "size": bpy.props.IntProperty(name="Size (px)", default=128, min=8, max=4096),
        "engine": bpy.props.EnumProperty(name="Engine", items=(("workbench", "Workbench", "Fast flat-studio render"),
                                                              ("cycles", "Cycles", "Path-traced, slow"))),
        "seed": bpy.props.IntProperty(name="Seed", default=0, min=0),
        "yaw": bpy.props.FloatProperty(name="Yaw Limit", default=45.0, min=0.0, max=45.0),
        "pitch": bpy.props.FloatProperty(name="Pitch Limit", default=30.0, min=0.0, max=30.0),
        "roll": bpy.props.FloatProperty(name="Roll Limit", default=30.0, min=0.0, max=30.0),
        "gaze_yaw": bpy.props.FloatProperty(name="Gaze Yaw Limit", default=30.0, min=0.0, max=35.0,
                                            description="The eyes' turn in the head, drawn within +- this "
                                                        "(0: the eyes look ahead)"),
        "gaze_pitch": bpy.props.FloatProperty(name="Gaze Pitch Limit", default=20.0, min=0.0, max=25.0),
        "sparse_k": bpy.props.IntProperty(name="Active AUs", default=-1, min=-1,
                                        description="Only this many random AUs per pair (-1: all AUs uniform)"),
        "masks": bpy.props.BoolProperty(name="Region Masks", default=False),
        "randomize_light": bpy.props.BoolProperty(name="Randomize Light", default=False),
        "randomize_background": bpy.props.BoolProperty(name="Randomize Background", default=False),
        "randomize_colors": bpy.props.BoolProperty(name="Randomize Colors", default=False),
        "chunk_size": bpy.props.IntProperty(name="Chunk Size", default=16, min=1),
        "samples": bpy.props.IntProperty(name="Cycles Samples", default=16, min=1),
        "val_fraction": bpy.props.FloatProperty(name="Validation Share", default=0.1, min=0.0, max=1.0),
        "lod": bpy.props.EnumProperty(name="Mesh Detail", default="auto",
                                      items=(("auto", "Auto", "Coarser mesh for small images (same look, faster)"),
                                             ("full", "Full", "Always the full mesh"),
                                             ("1", "LOD 1", "Mesh half as fine"),
                                             ("2", "LOD 2", "Mesh a third as fine"))),
        "overwrite": bpy.props.BoolProperty(name="Overwrite", default=False,
                                          description="Replace a dataset made with other settings"),
    }

    def _config(self):
        from ._core import pairs
        from .rig_render import RenderConfig

        return RenderConfig(
            output=bpy.path.abspath(self.output), count=self.count, size=self.size, engine=self.engine,
            seed=self.seed, pose_limits=(self.yaw, self.pitch, self.roll),
            sparse_k=None if self.sparse_k < 0 else self.sparse_k, gaze_limits=(self.gaze_yaw, self.gaze_pitch),
            masks=self.masks,
            randomization=pairs.Randomization(light=self.randomize_light, background=self.randomize_background,
                                              colors=self.randomize_colors),
            chunk_size=self.chunk_size, samples=self.samples, val_fraction=self.val_fraction,
            lod=self.lod, overwrite=self.overwrite, workers=1)

    def execute(self, context):
        """Run to completion (headless: ``bpy.ops.au2rig.render_pairs(output=..., count=...)``)."""
        from ._core import pairs
        from .rig_render import render_pairs

        try:
            summary = render_pairs(self._config())
        except (ValueError, pairs.PairsError) as e:
            self.report({'ERROR'}, str(e))
            return {'CANCELLED'}
        self.report({'INFO'}, f"{summary['count']} pairs in {summary['folder']} "
                              f"({summary['pairs_per_second']:.1f} pairs/s)")
        return {'FINISHED'}

    def invoke(self, context, event):
        """Modal run with a window: one chunk per timer event, progress, ESC cancels."""
        if context.window is None:
            return self.execute(context)
        from ._core import pairs
        from .rig_render import PairsJob

        try:
            self._job = PairsJob(self._config())
        except (ValueError, pairs.PairsError) as e:
            self.report({'ERROR'}, str(e))
            return {'CANCELLED'}
        wm = context.window_manager
        wm.progress_begin(0, self._job.total)
        self._timer = wm.event_timer_add(0.01, window=context.window)
        wm.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    def _end(self, context, message, level):
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        self._job.close()
        self.report({level}, message)

    def modal(self, context, event):
        from ._core import pairs

        if event.type == 'ESC':
            self._end(context, f"cancelled at {self._job.done} of {self._job.total} pairs; run again to resume",
                      'WARNING')
            return {'CANCELLED'}
        if event.type != 'TIMER':
            return {'PASS_THROUGH'}
        try:
            more = self._job.step()
        except (ValueError, pairs.PairsError) as e:
            self._end(context, str(e), 'ERROR')
            return {'CANCELLED'}
        context.window_manager.progress_update(self._job.done)
        if more:
            return {'RUNNING_MODAL'}
        self._end(context, f"{self._job.total} pairs in {self._job.folder}", 'INFO')
        return {'FINISHED'}


class AU2RIG_OT_import_tracking(bpy.types.Operator):
    """Key a tracking file (CSV/JSON/NPZ, ours or OpenFace's) onto the au2rig face rig as a new Action"""

    bl_idname = "au2rig.import_tracking"
    bl_label = "Import au2rig Tracking"
    bl_options = {'REGISTER', 'UNDO'}

    __annotations__ = {
        "filepath": bpy.props.StringProperty(name="File", subtype='FILE_PATH'),
        "filter_glob": bpy.props.StringProperty(default="*.csv;*.json;*.npz", options={'HIDDEN'}),
        **KEY_PROPS,
    }

    def execute(self, context):
        from . import animate

        try:
            opts = animate.KeyOptions.of(self)
            obj = animate.key_target(context, opts.target)
            tracking = animate.load_tracking(self.filepath)
            obj, action, report = animate.key_tracking(context, opts, tracking, obj)
        except (ValueError, OSError) as e:
            self.report({'ERROR'}, str(e))
            return {'CANCELLED'}
        if report is not None and (report.skipped or report.renamed):
            self.report({'WARNING'}, report.text())
        self.report({'INFO'}, f"{action.name}: {len(tracking)} rows of {bpy.path.basename(self.filepath)} "
                              f"onto {obj.name}")
        return {'FINISHED'}

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {'RUNNING_MODAL'}


class AU2RIG_OT_rebake(bpy.types.Operator):
    """Key the tracking kept in the .blend again, with other gains, smoothing, channels or frames
    (no video or tracking file needed); options not given keep their last values"""

    bl_idname = "au2rig.rebake"
    bl_label = "Re-bake au2rig Tracking"
    bl_options = {'REGISTER', 'UNDO'}

    __annotations__ = {**KEY_PROPS,
                       "replace": bpy.props.BoolProperty(name="Replace", default=True,
                                                         description="The new keys replace the Action the last "
                                                                     "keying made (else it is kept beside)")}

    def execute(self, context):
        from . import animate, stored

        try:
            obj = animate.key_target(context, self.target)
            last = stored.stored_options(obj)
            changes = {name: getattr(self, name) for name in (f.name for f in fields(animate.KeyOptions))
                       if self.properties.is_property_set(name) or name not in last}
            obj, action, report = animate.rebake(context, obj, replace=self.replace, **changes)
        except (ValueError, OSError) as e:
            self.report({'ERROR'}, str(e))
            return {'CANCELLED'}
        self.report({'INFO'}, f"{action.name}: the stored tracking re-baked onto {obj.name}")
        return {'FINISHED'}


class AU2RIG_OT_animate_from_video(bpy.types.Operator):
    """Track a face video (head pose, Action Units) and key it onto the face rig as a new Action (ESC cancels)"""

    bl_idname = "au2rig.animate_from_video"
    bl_label = "Animate Face from Video"
    bl_options = {'REGISTER', 'UNDO'}

    __annotations__ = {
        "filepath": bpy.props.StringProperty(name="Video", subtype='FILE_PATH'),
        "filter_glob": bpy.props.StringProperty(default=VIDEO_GLOB, options={'HIDDEN'}),
        "model": bpy.props.StringProperty(name="Model", subtype='FILE_PATH', default="",
                                          description="ONNX estimator (empty: the shipped model)"),
        **KEY_PROPS,
        "start_frame": bpy.props.IntProperty(name="Start Frame", default=1,
                                             description="Scene frame of the video's first frame"),
        "frame_step": bpy.props.IntProperty(name="Frame Step", default=1, min=1,
                                            description="Track every n-th video frame; one scene frame each"),
        "smoothing": bpy.props.FloatProperty(name="Smoothing", default=0.3, min=0.0, max=1.0,
                                             description="One Euro smoothing strength (0 off, 1 strong)"),
        "neutral": bpy.props.StringProperty(name="Neutral", default="auto",
                                            description="The actor's neutral frame: auto (the most relaxed), "
                                                        "none (no calibration) or a video frame number"),
        "image_brows": bpy.props.BoolProperty(name="Brows From the Image", default=True,
                                              description="Place the brows by their look in the image (fuller "
                                                          "raises and frowns); off: where the face mesh puts them, "
                                                          "for glasses or a fringe over the brows"),
        "scene_fps": bpy.props.BoolProperty(name="Scene FPS From Video", default=True,
                                            description="Set the scene's frame rate to the video's "
                                                        "(divided by the step)"),
        "actor": bpy.props.StringProperty(name="Actor Profile", subtype='FILE_PATH', default="",
                                          description="An actor profile from another take (its neutral face and "
                                                      "range of motion), for a take that never rests"),
        "save_actor": bpy.props.StringProperty(name="Save Actor", subtype='FILE_PATH', default="",
                                               description="Write this take's actor profile (JSON) for the actor's "
                                                           "next takes"),
        "save_tracking": bpy.props.BoolProperty(name="Save Tracking", default=False,
                                                description="Also write the tracking (CSV, JSON, NPZ)"),
        "tracking_path": bpy.props.StringProperty(name="Tracking File", subtype='FILE_PATH', default="",
                                                  description="Where to save the tracking CSV "
                                                              "(empty: beside the video)"),
    }

    def _prepare(self, context):
        """Check everything before tracking; ``(job, options, object name, map)``."""
        from . import animate, video
        from ._core import parse_gains

        opts = animate.KeyOptions.of(self)
        obj = animate.key_target(context, opts.target)
        rmap = animate.key_map(obj, opts.retarget_map, opts.map_path)
        gains = parse_gains(opts.gains)
        neutral = video.parse_neutral(self.neutral)
        if not self.filepath:
            raise ValueError("choose a video file")
        path = bpy.path.abspath(self.filepath)
        track = video.load_tracker()
        actor = bpy.path.abspath(self.actor) if self.actor else None
        save_actor = bpy.path.abspath(self.save_actor) if self.save_actor else None
        if save_actor and (actor or neutral is None):
            raise ValueError("Save Actor: a take tracked with an actor profile or without a neutral has no neutral of "
                             "its own to save; track a take where the actor rests, with Neutral auto or a frame")
        config = track.TrackConfig(model=bpy.path.abspath(self.model) if self.model else None,
                                   smoothing=self.smoothing, neutral=neutral, gains=gains,
                                   step=self.frame_step, actor=actor, brows=self.image_brows)
        save_to = None
        if self.save_tracking:
            from pathlib import Path

            save_to = bpy.path.abspath(self.tracking_path) if self.tracking_path else Path(path).with_suffix(".csv")
        return video.TrackJob(track, path, config, save_to, save_actor), opts, obj.name, rmap

    def execute(self, context):
        """Track and key; with a window as a modal run (progress, ESC cancels), else synchronously
        (headless: ``bpy.ops.au2rig.animate_from_video(filepath=...)``)."""
        try:
            self._job, self._opts, self._obj_name, self._rmap = self._prepare(context)
        except (ValueError, OSError) as e:
            self.report({'ERROR'}, str(e))
            return {'CANCELLED'}
        if context.window is None or bpy.app.background:
            self._job.run()
            return self._finish(context)
        self._job.start()
        wm = context.window_manager
        wm.progress_begin(0, 1000)
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        self._header(context, f"Tracking {self._job.video.name} (ESC to cancel)")
        return {'RUNNING_MODAL'}

    def invoke(self, context, event):
        if context.window is None or self.filepath:
            return self.execute(context)
        context.window_manager.fileselect_add(self)
        return {'RUNNING_MODAL'}

    def _header(self, context, text):
        screen = context.window.screen if context.window else None
        for area in (screen.areas if screen else ()):
            if area.type == 'VIEW_3D':
                area.header_text_set(text)

    def _end(self, context):
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        self._header(context, None)

    def modal(self, context, event):
        job = self._job
        if event.type in {'ESC', 'RIGHTMOUSE'} and event.value == 'PRESS':
            job.stop.set()  # the thread ends at its next frame; its result is dropped
            self._end(context)
            self.report({'WARNING'}, f"tracking {job.video.name} cancelled after {job.done} frames; "
                                     f"no Action created")
            return {'CANCELLED'}
        if event.type != 'TIMER':
            return {'PASS_THROUGH'}
        if job.running:
            context.window_manager.progress_update(int(1000 * job.fraction()))
            total = f" of {job.total}" if job.total else ""
            self._header(context, f"Tracking {job.video.name}: frame {job.done}{total} (ESC to cancel)")
            return {'RUNNING_MODAL'}
        self._end(context)
        return self._finish(context)

    def _finish(self, context):
        from . import video

        obj = bpy.data.objects.get(self._obj_name)
        try:
            if obj is None:
                raise ValueError(f"the target {self._obj_name!r} is gone")
            obj, action, report, tracking = video.finish(context, self._job, self._opts, obj, self._rmap)
        except video.TrackCancelled as e:
            self.report({'WARNING'}, str(e))
            return {'CANCELLED'}
        except (ValueError, OSError) as e:
            self.report({'ERROR'}, str(e))
            return {'CANCELLED'}
        if report is not None and (report.skipped or report.renamed):
            self.report({'WARNING'}, report.text())
        saved = f"; written: {', '.join(str(p) for p in self._job.written)}" if self._job.written else ""
        self.report({'INFO'}, f"{action.name}: {int(tracking.success.sum())} of {len(tracking)} frames of "
                              f"{self._job.video.name} onto {obj.name}{saved}")
        return {'FINISHED'}


CLASSES = (AU2RIG_OT_add_face_rig, AU2RIG_OT_render_pairs, AU2RIG_OT_import_tracking, AU2RIG_OT_rebake,
           AU2RIG_OT_animate_from_video)
