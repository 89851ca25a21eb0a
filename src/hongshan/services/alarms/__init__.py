"""The alarms' service: alarms raised, repeated, escalated, acknowledged and cleared, kept in
the registry, sent to their routes and heard by the rules.

The path of an alarm::

    a rule's or a scene's  ┐
    alarm action           │
    a device's TSL alert   │                       ┌─▶ registry (alarms, alarm_notes)
    or error event ────────┼─▶ AlarmService ───────┼─▶ RuleEngine.on_platform:
    POST /api/alarms ──────┤    one open alarm per │     $things/{pk}/{dn}/alarms
    a product's alarm      │    device and type;   └─▶ AlarmNotifier: each route that wants
    conditions ────────────┘    escalation timers        it (webhook, signed; e-mail, SMTP)

``service.AlarmService`` owns the lifecycle (decided by ``hongshan.alarms``, pure), the open
alarms in memory and the timers of escalation and reminders; ``turns.Turns`` the order of
each alarm's changes; ``notify.AlarmNotifier`` the routes and their sending;
``conditions.AlarmConditions`` runs the products' alarm conditions on the devices' posts
(deciding by ``rules.alarm_conditions``, pure), ``condition_book.AlarmConditionBook`` checks
and keeps them.
"""
