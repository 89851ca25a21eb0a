"""Scenes (issue 14): when a trigger fires — a device's value crossing a threshold (held for a
time), changing, an event, a status change, a silence, a cron schedule, the sun, a webhook —
and the scene's conditions hold, its actions run, one after another, with delays.

The path of a trigger through a scene::

    uplink on the bus ──▶ SceneEngine.on_uplink ─▶ the scene's trigger state per device
     (after the pipeline)      (rules.scene_triggers: crossing, hold, change, silence)
    clock (loop timers) ─▶ holds and silences due, cron (Cron.next_after), sun (SunTrigger)
    POST /api/scenes/{id}/trigger ─▶ SceneBook.trigger (admin or the scene's token)
                                │
                                ▼
                  conditions: time windows (the town's zone), the twin's latest values,
                  a group's aggregate ──▶ not run (traced: which condition stopped it)
                                │
                                ▼
                  mode (single · restart · queued · parallel, up to max) ──▶ skipped
                                │
                                ▼
                  a run: each step in turn — an action (the rules' builders: republish,
                  set, invoke, webhook) or a delay (kept in the registry until it ends)

``engine.SceneEngine`` runs them; ``book.SceneBook`` checks, stores (the registry's
``scenes`` and ``scene_waits``) and hands them to the engine; ``running`` is one scene as it
runs. At start each scene's state is read back from the history (a hold under way goes on
from when it began; a silence from the device's last value) and runs waiting in a delay go on.
"""
