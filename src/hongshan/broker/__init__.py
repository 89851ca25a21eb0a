"""The asyncio MQTT server around the sans-IO codec in ``hongshan.mqtt``."""
