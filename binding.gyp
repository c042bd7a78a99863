{
  "targets": [
    {
      "target_name": "pilot_udp_gso",
      "sources": ["native/udp_gso.c", "native/udp_rx.c"],
      "cflags": ["-O2", "-Wall"],
      "conditions": [["OS!='linux'", {"sources!": ["native/udp_gso.c", "native/udp_rx.c"], "type": "none"}]]
    },
    {
      "target_name": "pilot_aead",
      "sources": ["native/aead.c"],
      "cflags": ["-O2", "-Wall"],
      "conditions": [["OS!='linux'", {"sources!": ["native/aead.c"], "type": "none"}]]
    }
  ]
}
