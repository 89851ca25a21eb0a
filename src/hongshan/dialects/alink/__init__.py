"""Alibaba Cloud IoT's Alink protocol: its topics and JSON, over MQTT."""
