"""Moved: a product's custom topic classes are ``hongshan.things.model.TopicClass``, and a
device's topic rights are the Alink dialect's (``hongshan.dialects.alink.device_topics``).

Kept only for the Alibaba SDK tests (``tests/devices/test_linkkit.py``), which import
``TopicClass`` from here and are kept unchanged.
"""

from hongshan.things.model import TopicClass

__all__ = ["TopicClass"]
