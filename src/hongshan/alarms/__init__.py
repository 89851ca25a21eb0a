"""Alarms, as a town's operators know them from ThingsBoard and Alibaba Cloud IoT: pure data
and rules, no IO (the service that keeps and runs them is ``services.alarms``).

- ``model``: a severity (``indeterminate`` < ``warning`` < ``minor`` < ``major`` <
  ``critical``), an alarm (its device, type, severity, status, originator, details, times,
  repeats, acknowledgement, clearing, assignee, notes), ThingsBoard's four statuses and the
  one table of their transitions (``TRANSITIONS``), and what raising again does to an open
  alarm (``raise_again``): one open alarm per device and type, a repeat counted on it;
- ``escalation``: a policy (after T seconds unacknowledged raise the severity to S; remind
  every R seconds until acknowledged) and what is due of it at a time (``due``,
  ``next_wake``), pure functions of (alarm, now) so that they are tested on a fake clock.

An alarm's lifecycle::

                 acknowledge                       clear
    ACTIVE_UNACK ───────────▶ ACTIVE_ACK ─────────────────────────▶ CLEARED_ACK
         │                        ▲ (raised again more severe:            ▲
         │ clear                  │  back to ACTIVE_UNACK)                │ acknowledge
         ▼                                                                │
    CLEARED_UNACK ────────────────────────────────────────────────────────┘
"""
