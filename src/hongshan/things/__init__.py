"""The registry's domain: products, thing models (Alibaba TSL), devices, gateways and
sub-devices, their lifecycle and naming, and the directory the message path reads them from."""
