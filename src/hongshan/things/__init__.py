"""The registry: products, thing models (Alibaba TSL), devices, gateways and sub-devices."""
