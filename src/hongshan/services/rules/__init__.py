"""The rules engine: rules (``hongshan.rules``, the language) run live on the town's messages.

The path of a message through the rules::

    client publish ──▶ broker (after the ACL and the dialects' taps; a refused one stops there)
                         │ on_published
                         ▼
    uplink on the bus ─▶ RuleEngine ◀── republish (one deeper; at MAX_DEPTH rules stop)
     (after the          │  sources present an uplink on their topics: $things/… (sources),
      pipeline)          │  Alibaba's rules-engine data (dialects/alink/rule_data.py)
                         │  index: topic filter → rules (the broker's subscription trie)
                         ▼
                       RunningRule: WHERE → rate limit → fire; counters, trace
                         │  each action started; failures → the error action
                         ▼
                       actions: republish (broker) · set / invoke (DeviceCommands) · webhook

``engine.RuleEngine`` runs them; ``book.RuleBook`` checks, stores (the registry's ``rules``
table) and hands them to the engine; ``running`` is one rule as it runs; ``actions`` and
``webhook`` what a rule does; ``sources`` what its FROM can name.
"""
