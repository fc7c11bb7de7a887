"""The national document interconnection axis (Trục liên thông văn bản quốc gia, VXP) as the
Government Office's SDK speaks it: signed headers (:mod:`gateway.vxp.protocol`)."""
