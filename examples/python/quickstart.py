import sys, pilot
node = pilot.connect()                      # the local daemon (PILOT_SOCKET, or pilotctl's default)
peer = sys.argv[1]                          # the other agent: hostname or address
print(node.handshake(peer, "quickstart"))   # trusted once both sides asked (or the peer approves)
with node.dial(peer, 7) as s:               # port 7 is every node's echo service
    s.sendall(b"hello over pilot")
    s.shutdown()                            # done sending: the echo ends its side too
    print(s.makefile("rb").read().decode())
