"""The command-line table: (id, -L values, -F values, expected config as a plain dict).

Every expected value is written by hand from shared/spec/v3.md 1.3 (gost 3.2.6 `config/cmd/cmd.go`),
shared/spec/tuntap.md 1.4/1.5 and the two seed documents (every command line of seeds/tuntap.md and
seeds/tun2socks.md is a row). Metadata values from the command line are strings, except `dns` (a
list) and `so_mark`/`proxyProtocol` (ints). Used by test_config_cmd.py (compile) and
test_config_dump.py (round trips).
"""

from __future__ import annotations

from typing import Any

TUN_SERVER_MD = {"net": "192.168.123.1/24"}
TUN_CLIENT_MD = {"net": "192.168.123.2/24"}
TUNGO_MD = {"name": "tungo", "net": "192.168.123.1/24", "mtu": "1420", "dns": ["1.1.1.1"]}
RELAY_WSS_HOP = {
    "name": "hop-0",
    "nodes": [{
        "name": "node-0",
        "addr": "SERVER_IP:443",
        "connector": {"type": "relay"},
        "dialer": {"type": "wss", "tls": {"serverName": "SERVER_IP"}},
    }],
    "metadata": {"interface": "eth0"},
}
SOCKS5_HOP = {
    "name": "hop-0",
    "nodes": [{
        "name": "node-0",
        "addr": "SERVER_IP:1080",
        "connector": {"type": "socks5"},
        "dialer": {"type": "tcp", "tls": {"serverName": "SERVER_IP"}},
    }],
}

CASES: list[tuple[str, list[str], list[str], dict[str, Any]]] = [
    # ---- seeds/tuntap.md --------------------------------------------------------------------
    ("tuntap: tun server", ["tun://:8421?net=192.168.123.1/24"], [], {"services": [{
        "name": "service-0", "addr": ":8421",
        "handler": {"type": "tun", "metadata": TUN_SERVER_MD},
        "listener": {"type": "tun", "metadata": TUN_SERVER_MD},
        "metadata": TUN_SERVER_MD,
    }]}),
    ("tuntap: tun client", ["tun://:8421/SERVER_IP:8421?net=192.168.123.2/24"], [], {"services": [{
        "name": "service-0", "addr": ":8421",
        "handler": {"type": "tun", "metadata": TUN_CLIENT_MD},
        "listener": {"type": "tun", "metadata": TUN_CLIENT_MD},
        "forwarder": {"nodes": [{"name": "target-0", "addr": "SERVER_IP:8421"}]},
        "metadata": TUN_CLIENT_MD,
    }]}),
    ("tuntap: tun usage line, every optional part filled (v2 method:password = AEAD cipher)",
     ["tun://chacha20-ietf-poly1305:123456@192.168.1.2:8421/SERVER_IP:8421?net=192.168.123.2/24"
      "&name=tun0&mtu=1350&route=10.100.0.0/16&gw=192.168.123.1"], [],
     {"services": [{
         "name": "service-0", "addr": "192.168.1.2:8421",
         "handler": {
             "type": "tun",
             "auth": {"username": "chacha20-ietf-poly1305", "password": "123456"},
             "metadata": {"net": "192.168.123.2/24", "name": "tun0", "mtu": "1350",
                          "route": "10.100.0.0/16", "gw": "192.168.123.1"},
         },
         "listener": {"type": "tun", "metadata": {"net": "192.168.123.2/24", "name": "tun0", "mtu": "1350",
                                                  "route": "10.100.0.0/16", "gw": "192.168.123.1"}},
         "forwarder": {"nodes": [{"name": "target-0", "addr": "SERVER_IP:8421"}]},
         "metadata": {"net": "192.168.123.2/24", "name": "tun0", "mtu": "1350",
                      "route": "10.100.0.0/16", "gw": "192.168.123.1"},
     }]}),
    ("tuntap: tap usage line, every optional part filled",
     ["tap://aes-256-gcm:pass@:8421/SERVER_IP:8421?net=192.168.123.2/24&name=tap0&mtu=1350"
      "&route=10.100.0.0/16&gw=192.168.123.1"], [],
     {"services": [{
         "name": "service-0", "addr": ":8421",
         "handler": {
             "type": "tap",
             "auth": {"username": "aes-256-gcm", "password": "pass"},
             "metadata": {"net": "192.168.123.2/24", "name": "tap0", "mtu": "1350",
                          "route": "10.100.0.0/16", "gw": "192.168.123.1"},
         },
         "listener": {"type": "tap", "metadata": {"net": "192.168.123.2/24", "name": "tap0", "mtu": "1350",
                                                  "route": "10.100.0.0/16", "gw": "192.168.123.1"}},
         "forwarder": {"nodes": [{"name": "target-0", "addr": "SERVER_IP:8421"}]},
         "metadata": {"net": "192.168.123.2/24", "name": "tap0", "mtu": "1350",
                      "route": "10.100.0.0/16", "gw": "192.168.123.1"},
     }]}),
    ("tuntap: tap usage line, bare server", ["tap://:8421?net=192.168.123.1/24&name=tap0"], [],
     {"services": [{
         "name": "service-0", "addr": ":8421",
         "handler": {"type": "tap", "metadata": {"net": "192.168.123.1/24", "name": "tap0"}},
         "listener": {"type": "tap", "metadata": {"net": "192.168.123.1/24", "name": "tap0"}},
         "metadata": {"net": "192.168.123.1/24", "name": "tap0"},
     }]}),
    ("tuntap: fake TCP server", ["tun://:8421?net=192.168.123.1/24&tcp=true"], [], {"services": [{
        "name": "service-0", "addr": ":8421",
        "handler": {"type": "tun", "metadata": {"net": "192.168.123.1/24", "tcp": "true"}},
        "listener": {"type": "tun", "metadata": {"net": "192.168.123.1/24", "tcp": "true"}},
        "metadata": {"net": "192.168.123.1/24", "tcp": "true"},
    }]}),
    ("tuntap: fake TCP client", ["tun://:0/SERVER_IP:8421?net=192.168.123.2/24&tcp=true"], [], {"services": [{
        "name": "service-0", "addr": ":0",
        "handler": {"type": "tun", "metadata": {"net": "192.168.123.2/24", "tcp": "true"}},
        "listener": {"type": "tun", "metadata": {"net": "192.168.123.2/24", "tcp": "true"}},
        "forwarder": {"nodes": [{"name": "target-0", "addr": "SERVER_IP:8421"}]},
        "metadata": {"net": "192.168.123.2/24", "tcp": "true"},
    }]}),
    ("tuntap: proxy chain server", ["tun://:8421?net=192.168.123.1/24", "socks5://:1080"], [], {"services": [
        {"name": "service-0", "addr": ":8421",
         "handler": {"type": "tun", "metadata": TUN_SERVER_MD},
         "listener": {"type": "tun", "metadata": TUN_SERVER_MD},
         "metadata": TUN_SERVER_MD},
        {"name": "service-1", "addr": ":1080", "handler": {"type": "socks5"}, "listener": {"type": "tcp"}},
    ]}),
    ("tuntap: proxy chain client (empty target host stays ':8421')",
     ["tun://:0/:8421?net=192.168.123.2/24"], ["socks5://SERVER_IP:1080"],
     {"services": [{
         "name": "service-0", "addr": ":0",
         "handler": {"type": "tun", "chain": "chain-0", "metadata": TUN_CLIENT_MD},
         "listener": {"type": "tun", "metadata": TUN_CLIENT_MD},
         "forwarder": {"nodes": [{"name": "target-0", "addr": ":8421"}]},
         "metadata": TUN_CLIENT_MD,
     }], "chains": [{"name": "chain-0", "hops": [SOCKS5_HOP]}]}),
    ("tuntap: port forwarding server", ["tun://:8421?net=192.168.123.1/24", "socks5://:1080"], [],
     {"services": [
         {"name": "service-0", "addr": ":8421",
          "handler": {"type": "tun", "metadata": TUN_SERVER_MD},
          "listener": {"type": "tun", "metadata": TUN_SERVER_MD},
          "metadata": TUN_SERVER_MD},
         {"name": "service-1", "addr": ":1080", "handler": {"type": "socks5"}, "listener": {"type": "tcp"}},
     ]}),
    ("tuntap: port forwarding client",
     ["tun://:8421/:8420?net=192.168.123.2/24", "udp://:8420/:8421"], ["socks5://server_ip:1080"],
     {"services": [
         {"name": "service-0", "addr": ":8421",
          "handler": {"type": "tun", "chain": "chain-0", "metadata": TUN_CLIENT_MD},
          "listener": {"type": "tun", "metadata": TUN_CLIENT_MD},
          "forwarder": {"nodes": [{"name": "target-0", "addr": ":8420"}]},
          "metadata": TUN_CLIENT_MD},
         {"name": "service-1", "addr": ":8420",
          "handler": {"type": "udp", "chain": "chain-0"},
          "listener": {"type": "udp"},
          "forwarder": {"nodes": [{"name": "target-0", "addr": ":8421"}]}},
     ], "chains": [{"name": "chain-0", "hops": [{
         "name": "hop-0",
         "nodes": [{"name": "node-0", "addr": "server_ip:1080", "connector": {"type": "socks5"},
                    "dialer": {"type": "tcp", "tls": {"serverName": "server_ip"}}}],
     }]}]}),
    ("tuntap spec 1.4: v3 docs client with keepAlive", ["tun://:0/SERVER_IP:8421?net=192.168.123.2/24&keepAlive=true"],
     [], {"services": [{
         "name": "service-0", "addr": ":0",
         "handler": {"type": "tun", "metadata": {"net": "192.168.123.2/24", "keepAlive": "true"}},
         "listener": {"type": "tun", "metadata": {"net": "192.168.123.2/24", "keepAlive": "true"}},
         "forwarder": {"nodes": [{"name": "target-0", "addr": "SERVER_IP:8421"}]},
         "metadata": {"net": "192.168.123.2/24", "keepAlive": "true"},
     }]}),
    # ---- seeds/tun2socks.md -----------------------------------------------------------------
    ("tun2socks: Linux/Windows CLI (dns becomes a list)",
     ["tungo://:0?name=tungo&net=192.168.123.1/24&mtu=1420&dns=1.1.1.1"],
     ["relay+wss://SERVER_IP:443?interface=eth0"],
     {"services": [{
         "name": "service-0", "addr": ":0",
         "handler": {"type": "tungo", "chain": "chain-0", "metadata": TUNGO_MD},
         "listener": {"type": "tungo", "metadata": TUNGO_MD},
         "metadata": TUNGO_MD,
     }], "chains": [{"name": "chain-0", "hops": [RELAY_WSS_HOP]}]}),
    ("tun2socks: macOS CLI",
     ["tungo://:0?name=tungo&net=192.168.123.1/24&mtu=1420&route=1.0.0.0/8,2.0.0.0/8"],
     ["relay+wss://SERVER_IP:443?interface=eth0"],
     {"services": [{
         "name": "service-0", "addr": ":0",
         "handler": {"type": "tungo", "chain": "chain-0", "metadata": {
             "name": "tungo", "net": "192.168.123.1/24", "mtu": "1420", "route": "1.0.0.0/8,2.0.0.0/8"}},
         "listener": {"type": "tungo", "metadata": {
             "name": "tungo", "net": "192.168.123.1/24", "mtu": "1420", "route": "1.0.0.0/8,2.0.0.0/8"}},
         "metadata": {"name": "tungo", "net": "192.168.123.1/24", "mtu": "1420",
                      "route": "1.0.0.0/8,2.0.0.0/8"},
     }], "chains": [{"name": "chain-0", "hops": [RELAY_WSS_HOP]}]}),
    ("tun2socks: sniffing + bypass CLI (interface is service-only; -F bypass is bypass-0)",
     ["tungo://:0?name=tungo&net=192.168.123.1/24&mtu=1420&dns=1.1.1.1&interface=eth0&sniffing=true"],
     ["relay+wss://SERVER_IP:443?interface=eth0&bypass=example.com"],
     {"services": [{
         "name": "service-0", "addr": ":0",
         "handler": {"type": "tungo", "chain": "chain-0", "metadata": {**TUNGO_MD, "sniffing": "true"}},
         "listener": {"type": "tungo", "metadata": {**TUNGO_MD, "sniffing": "true"}},
         "metadata": {**TUNGO_MD, "sniffing": "true", "interface": "eth0"},
     }],
      "chains": [{"name": "chain-0", "hops": [{**RELAY_WSS_HOP, "bypass": "bypass-0"}]}],
      "bypasses": [{"name": "bypass-0", "matchers": ["example.com"]}]}),
    # ---- forwarding -------------------------------------------------------------------------
    ("tcp port forwarding", ["tcp://:8080/192.168.1.1:80"], [], {"services": [{
        "name": "service-0", "addr": ":8080",
        "handler": {"type": "tcp"}, "listener": {"type": "tcp"},
        "forwarder": {"nodes": [{"name": "target-0", "addr": "192.168.1.1:80"}]},
    }]}),
    ("udp port forwarding (spec 9.4)", ["udp://:10053/192.168.1.1:53"], [], {"services": [{
        "name": "service-0", "addr": ":10053",
        "handler": {"type": "udp"}, "listener": {"type": "udp"},
        "forwarder": {"nodes": [{"name": "target-0", "addr": "192.168.1.1:53"}]},
    }]}),
    ("target list with a port range, selector keys with defaults",
     ["tcp://:8080/1.1.1.1:80,2.2.2.2:8000-8001?strategy=fifo&maxFails=3"], [], {"services": [{
         "name": "service-0", "addr": ":8080",
         "handler": {"type": "tcp"}, "listener": {"type": "tcp"},
         "forwarder": {
             "selector": {"strategy": "fifo", "maxFails": 3, "failTimeout": "30s"},
             "nodes": [{"name": "target-0", "addr": "1.1.1.1:80"},
                       {"name": "target-1", "addr": "2.2.2.2:8000"},
                       {"name": "target-2", "addr": "2.2.2.2:8001"}],
         },
     }]}),
    ("fail_timeout as an integer of seconds", ["tcp://:8080/1.1.1.1:80?fail_timeout=45"], [], {"services": [{
        "name": "service-0", "addr": ":8080",
        "handler": {"type": "tcp"}, "listener": {"type": "tcp"},
        "forwarder": {"selector": {"strategy": "round", "maxFails": 1, "failTimeout": "45s"},
                      "nodes": [{"name": "target-0", "addr": "1.1.1.1:80"}]},
    }]}),
    ("service port range, one target shared", ["tcp://:8000-8002/10.0.0.1:80"], [], {"services": [
        {"name": f"service-{i}", "addr": f":{8000 + i}",
         "handler": {"type": "tcp"}, "listener": {"type": "tcp"},
         "forwarder": {"nodes": [{"name": "target-0", "addr": "10.0.0.1:80"}]}} for i in range(3)
    ]}),
    ("service port range, target i for service i", ["tcp://:8000-8001/10.0.0.1:80-81"], [], {"services": [
        {"name": "service-0", "addr": ":8000", "handler": {"type": "tcp"}, "listener": {"type": "tcp"},
         "forwarder": {"nodes": [{"name": "target-0", "addr": "10.0.0.1:80"}]}},
        {"name": "service-1", "addr": ":8001", "handler": {"type": "tcp"}, "listener": {"type": "tcp"},
         "forwarder": {"nodes": [{"name": "target-1", "addr": "10.0.0.1:81"}]}},
    ]}),
    ("bare host:port range with more targets than services", [":9000-9001/a:1,b:2,c:3"], [], {"services": [
        {"name": "service-0", "addr": ":9000", "handler": {"type": "tcp"}, "listener": {"type": "tcp"},
         "forwarder": {"nodes": [{"name": "target-0", "addr": "a:1"}]}},
        {"name": "service-1", "addr": ":9001", "handler": {"type": "tcp"}, "listener": {"type": "tcp"},
         "forwarder": {"nodes": [{"name": "target-1", "addr": "b:2"}]}},
    ]}),
    ("IPv6 service and target", ["tcp://[::1]:8080/[::1]:80"], [], {"services": [{
        "name": "service-0", "addr": "[::1]:8080", "handler": {"type": "tcp"}, "listener": {"type": "tcp"},
        "forwarder": {"nodes": [{"name": "target-0", "addr": "[::1]:80"}]},
    }]}),
    ("rtcp takes the chain on the listener", ["rtcp://:2222/192.168.1.1:22"], ["relay://h:8443"], {
        "services": [{"name": "service-0", "addr": ":2222", "handler": {"type": "rtcp"},
                      "listener": {"type": "rtcp", "chain": "chain-0"},
                      "forwarder": {"nodes": [{"name": "target-0", "addr": "192.168.1.1:22"}]}}],
        "chains": [{"name": "chain-0", "hops": [{"name": "hop-0", "nodes": [{
            "name": "node-0", "addr": "h:8443", "connector": {"type": "relay"},
            "dialer": {"type": "tcp", "tls": {"serverName": "h"}}}]}]}],
    }),
    # ---- schemes ----------------------------------------------------------------------------
    ("scheme fallbacks for -L",
     [":8080", "wss://:443", "ssu://:8338", "foo://:1", "a+b+c://:2", "relay+wss://:443/1.2.3.4:80",
      "socks5://:1080/1.2.3.4:80", "tls://:8443/1.2.3.4:80"], [],
     {"services": [
         {"name": "service-0", "addr": ":8080", "handler": {"type": "auto"}, "listener": {"type": "tcp"}},
         {"name": "service-1", "addr": ":443", "handler": {"type": "auto"}, "listener": {"type": "wss"}},
         {"name": "service-2", "addr": ":8338", "handler": {"type": "ssu"}, "listener": {"type": "udp"}},
         {"name": "service-3", "addr": ":1", "handler": {"type": "auto"}, "listener": {"type": "tcp"}},
         {"name": "service-4", "addr": ":2", "handler": {"type": "auto"}, "listener": {"type": "tcp"}},
         {"name": "service-5", "addr": ":443", "handler": {"type": "relay"}, "listener": {"type": "wss"},
          "forwarder": {"nodes": [{"name": "target-0", "addr": "1.2.3.4:80"}]}},
         {"name": "service-6", "addr": ":1080", "handler": {"type": "tcp"}, "listener": {"type": "tcp"},
          "forwarder": {"nodes": [{"name": "target-0", "addr": "1.2.3.4:80"}]}},
         {"name": "service-7", "addr": ":8443", "handler": {"type": "forward"}, "listener": {"type": "tls"},
          "forwarder": {"nodes": [{"name": "target-0", "addr": "1.2.3.4:80"}]}},
     ]}),
    ("https is http+tls; the server certificate goes to listener.tls",
     ["https://user:pass@:443?certFile=cert.pem&keyFile=key.pem&caFile=ca.pem"], [],
     {"services": [{
         "name": "service-0", "addr": ":443",
         "handler": {"type": "http", "auth": {"username": "user", "password": "pass"}},
         "listener": {"type": "tls",
                      "tls": {"certFile": "cert.pem", "keyFile": "key.pem", "caFile": "ca.pem"}},
     }]}),
    ("TLS keys without a certificate give no listener.tls but are still removed",
     ["tls://:443?key=k.pem&foo=1"], [],
     {"services": [{
         "name": "service-0", "addr": ":443",
         "handler": {"type": "auto", "metadata": {"foo": "1"}},
         "listener": {"type": "tls", "metadata": {"foo": "1"}},
         "metadata": {"foo": "1"},
     }]}),
    ("scheme fallbacks for -F", [":8080"],
     ["tls://h:443", "https://h:443", "ws://h:80", "ssu://h:8338", "mwss://h:443"],
     {"services": [{"name": "service-0", "addr": ":8080", "handler": {"type": "auto", "chain": "chain-0"},
                    "listener": {"type": "tcp"}}],
      "chains": [{"name": "chain-0", "hops": [
          {"name": f"hop-{i}", "nodes": [{"name": "node-0", "addr": addr, "connector": {"type": connector},
                                          "dialer": {"type": dialer, "tls": {"serverName": "h"}}}]}
          for i, (addr, connector, dialer) in enumerate([
              ("h:443", "http", "tls"), ("h:443", "http", "tls"), ("h:80", "http", "ws"),
              ("h:8338", "ssu", "udp"), ("h:443", "http", "mwss")])
      ]}]}),
    # ---- auth -------------------------------------------------------------------------------
    ("auth= is base64 of user:pass", ["socks5://:1080?auth=dXNlcjpwYXNz"], [], {"services": [{
        "name": "service-0", "addr": ":1080",
        "handler": {"type": "socks5", "auth": {"username": "user", "password": "pass"}},
        "listener": {"type": "tcp"},
    }]}),
    ("gost 3.2.6: a service's auth= wins over user:pass@", ["socks5://a:b@:1080?auth=dXNlcjpwYXNz"], [],
     {"services": [{
         "name": "service-0", "addr": ":1080",
         "handler": {"type": "socks5", "auth": {"username": "user", "password": "pass"}},
         "listener": {"type": "tcp"},
     }]}),
    ("a node's user:pass@ wins over auth=; auth= still lands in the hop metadata",
     [":1080"], ["socks5://a:b@h:1080?auth=dXNlcjpwYXNz", "http://h2:8080?auth=dXNlcg=="],
     {"services": [{"name": "service-0", "addr": ":1080", "handler": {"type": "auto", "chain": "chain-0"},
                    "listener": {"type": "tcp"}}],
      "chains": [{"name": "chain-0", "hops": [
          {"name": "hop-0", "nodes": [{"name": "node-0", "addr": "h:1080",
                                       "connector": {"type": "socks5",
                                                     "auth": {"username": "a", "password": "b"}},
                                       "dialer": {"type": "tcp", "tls": {"serverName": "h"}}}],
           "metadata": {"auth": "dXNlcjpwYXNz"}},
          {"name": "hop-1", "nodes": [{"name": "node-0", "addr": "h2:8080",
                                       "connector": {"type": "http", "auth": {"username": "user"}},
                                       "dialer": {"type": "tcp", "tls": {"serverName": "h2"}}}],
           "metadata": {"auth": "dXNlcg=="}},
      ]}]}),
    ("ssh transports take the auth themselves", ["sshd://u:p@:2222"], ["sshd://u2:p2@h:2222"], {
        "services": [{"name": "service-0", "addr": ":2222", "handler": {"type": "sshd", "chain": "chain-0"},
                      "listener": {"type": "sshd", "auth": {"username": "u", "password": "p"}}}],
        "chains": [{"name": "chain-0", "hops": [{"name": "hop-0", "nodes": [{
            "name": "node-0", "addr": "h:2222", "connector": {"type": "sshd"},
            "dialer": {"type": "sshd", "auth": {"username": "u2", "password": "p2"},
                       "tls": {"serverName": "h"}}}]}]}],
    }),
    # ---- metadata scoping and the keys that become objects ------------------------------------
    ("service./handler./listener. prefixes, retries, whitelist bypass, interface, so_mark",
     ["socks5://:1080?handler.udp=true&listener.backlog=64&service.enableStats=true"
      "&bypass=~10.0.0.0/8,.example.com&retries=2&interface=eth1&so_mark=100"], [],
     {"services": [{
         "name": "service-0", "addr": ":1080", "bypass": "bypass-0",
         "handler": {"type": "socks5", "retries": 2, "metadata": {"udp": "true"}},
         "listener": {"type": "tcp", "metadata": {"backlog": "64", "bypass": "~10.0.0.0/8,.example.com",
                                                  "retries": "2"}},
         "metadata": {"enableStats": "true", "bypass": "~10.0.0.0/8,.example.com", "retries": "2",
                      "interface": "eth1", "so_mark": 100},
     }], "bypasses": [{"name": "bypass-0", "whitelist": True, "matchers": ["10.0.0.0/8", ".example.com"]}]}),
    ("dns=a,b becomes a list everywhere; netns and proxyProtocol are service-only",
     ["tun://:8421?net=10.0.0.1/24&dns=1.1.1.1,8.8.8.8&netns=ns1&proxyProtocol=1"], [],
     {"services": [{
         "name": "service-0", "addr": ":8421",
         "handler": {"type": "tun", "metadata": {"net": "10.0.0.1/24", "dns": ["1.1.1.1", "8.8.8.8"]}},
         "listener": {"type": "tun", "metadata": {"net": "10.0.0.1/24", "dns": ["1.1.1.1", "8.8.8.8"]}},
         "metadata": {"net": "10.0.0.1/24", "dns": ["1.1.1.1", "8.8.8.8"], "netns": "ns1",
                      "proxyProtocol": 1},
     }]}),
    ("limiters", ["socks5://:1080?limiter.in=100MB&limiter.out=200MB&limiter.conn.in=10MB&climiter=10&rlimiter=5.5"],
     [], {"services": [{
         "name": "service-0", "addr": ":1080",
         "limiter": "limiter-0", "climiter": "climiter-0", "rlimiter": "rlimiter-0",
         "handler": {"type": "socks5"},
         "listener": {"type": "tcp", "metadata": {
             "limiter.in": "100MB", "limiter.out": "200MB", "limiter.conn.in": "10MB", "climiter": "10",
             "rlimiter": "5.5"}},
         "metadata": {"limiter.in": "100MB", "limiter.out": "200MB", "limiter.conn.in": "10MB",
                      "climiter": "10", "rlimiter": "5.5"},
     }],
      "limiters": [{"name": "limiter-0", "limits": ["$ 100MB 200MB", "$$ 10MB "]}],
      "climiters": [{"name": "climiter-0", "limits": ["$ 10"]}],
      "rlimiters": [{"name": "rlimiter-0", "limits": ["$ 5.5"]}]}),
    ("admission, resolver with prefer, hosts",
     ["http://:8080?admission=~192.168.0.0/16&resolver=1.1.1.1,udp://8.8.8.8:53&prefer=ipv4"
      "&hosts=example.com:127.0.0.1,bad"], [],
     {"services": [{
         "name": "service-0", "addr": ":8080",
         "admission": "admission-0", "resolver": "resolver-0", "hosts": "hosts-0",
         "handler": {"type": "http", "metadata": {"prefer": "ipv4"}},
         "listener": {"type": "tcp", "metadata": {
             "admission": "~192.168.0.0/16", "resolver": "1.1.1.1,udp://8.8.8.8:53", "prefer": "ipv4",
             "hosts": "example.com:127.0.0.1,bad"}},
         "metadata": {"admission": "~192.168.0.0/16", "resolver": "1.1.1.1,udp://8.8.8.8:53",
                      "prefer": "ipv4", "hosts": "example.com:127.0.0.1,bad"},
     }],
      "admissions": [{"name": "admission-0", "whitelist": True, "matchers": ["192.168.0.0/16"]}],
      "resolvers": [{"name": "resolver-0", "nameservers": [
          {"addr": "1.1.1.1", "prefer": "ipv4"}, {"addr": "udp://8.8.8.8:53", "prefer": "ipv4"}]}],
      "hosts": [{"name": "hosts-0", "mappings": [{"ip": "127.0.0.1", "hostname": "example.com"}]}]}),
    # ---- -F ---------------------------------------------------------------------------------
    ("several -F: one hop each; secure/serverName go to the dialer TLS and stay in the hop metadata",
     [":8080"], ["socks5://a:1080", "relay+tls://b:443?secure=true&serverName=x"],
     {"services": [{"name": "service-0", "addr": ":8080", "handler": {"type": "auto", "chain": "chain-0"},
                    "listener": {"type": "tcp"}}],
      "chains": [{"name": "chain-0", "hops": [
          {"name": "hop-0", "nodes": [{"name": "node-0", "addr": "a:1080", "connector": {"type": "socks5"},
                                       "dialer": {"type": "tcp", "tls": {"serverName": "a"}}}]},
          {"name": "hop-1", "nodes": [{"name": "node-0", "addr": "b:443", "connector": {"type": "relay"},
                                       "dialer": {"type": "tls",
                                                  "tls": {"secure": True, "serverName": "x"}}}],
           "metadata": {"secure": "true", "serverName": "x"}},
      ]}]}),
    ("h1:p,h2:p gives two nodes in one hop", ["socks5://:1080"], ["socks5://u:p@h1:1080,h2:1080?strategy=rand"],
     {"services": [{"name": "service-0", "addr": ":1080", "handler": {"type": "socks5", "chain": "chain-0"},
                    "listener": {"type": "tcp"}}],
      "chains": [{"name": "chain-0", "hops": [{
          "name": "hop-0",
          "selector": {"strategy": "rand", "maxFails": 1, "failTimeout": "30s"},
          "nodes": [
              {"name": "node-0", "addr": "h1:1080",
               "connector": {"type": "socks5", "auth": {"username": "u", "password": "p"}},
               "dialer": {"type": "tcp", "tls": {"serverName": "h1"}}},
              {"name": "node-1", "addr": "h2:1080",
               "connector": {"type": "socks5", "auth": {"username": "u", "password": "p"}},
               "dialer": {"type": "tcp", "tls": {"serverName": "h2"}}},
          ],
      }]}]}),
    ("-F hop keys, prefixes, and bypass numbering (-F first)",
     ["tcp://:8080/10.0.0.1:80?bypass=internal.example"],
     ["relay+wss://SRV:443?bypass=~*.example.com&resolver=1.1.1.1,tcp://8.8.8.8:53&hosts=srv.local:10.0.0.2"
      "&so_mark=7&node.weight=2&connector.nodelay=true&dialer.path=/tun&hop.x=1&y=2"],
     {"services": [{
         "name": "service-0", "addr": ":8080", "bypass": "bypass-1",
         "handler": {"type": "tcp", "chain": "chain-0"},
         "listener": {"type": "tcp", "metadata": {"bypass": "internal.example"}},
         "forwarder": {"nodes": [{"name": "target-0", "addr": "10.0.0.1:80"}]},
         "metadata": {"bypass": "internal.example"},
     }],
      "chains": [{"name": "chain-0", "hops": [{
          "name": "hop-0", "bypass": "bypass-0", "resolver": "resolver-0", "hosts": "hosts-0",
          "nodes": [{"name": "node-0", "addr": "SRV:443",
                     "connector": {"type": "relay", "metadata": {"nodelay": "true", "y": "2"}},
                     "dialer": {"type": "wss", "tls": {"serverName": "SRV"},
                                "metadata": {"path": "/tun", "y": "2"}},
                     "metadata": {"weight": "2", "y": "2"}}],
          "metadata": {"x": "1", "y": "2", "so_mark": 7},
      }]}],
      "bypasses": [{"name": "bypass-0", "whitelist": True, "matchers": ["*.example.com"]},
                   {"name": "bypass-1", "matchers": ["internal.example"]}],
      "resolvers": [{"name": "resolver-0", "nameservers": [{"addr": "1.1.1.1"}, {"addr": "tcp://8.8.8.8:53"}]}],
      "hosts": [{"name": "hosts-0", "mappings": [{"ip": "10.0.0.2", "hostname": "srv.local"}]}]}),
    ("a node with an empty host has no dialer TLS", [":1"], ["socks5://:1080"], {
        "services": [{"name": "service-0", "addr": ":1", "handler": {"type": "auto", "chain": "chain-0"},
                      "listener": {"type": "tcp"}}],
        "chains": [{"name": "chain-0", "hops": [{"name": "hop-0", "nodes": [{
            "name": "node-0", "addr": ":1080", "connector": {"type": "socks5"},
            "dialer": {"type": "tcp"}}]}]}],
    }),
    ("query keys keep their spelling; lookups are case-insensitive, deletes exact (as in gost)",
     ["tun://:8421?NET=10.0.0.1/24&Interface=eth0&Retries=3"], [],
     {"services": [{
         "name": "service-0", "addr": ":8421",
         "handler": {"type": "tun", "retries": 3, "metadata": {"NET": "10.0.0.1/24", "Interface": "eth0",
                                                              "Retries": "3"}},
         "listener": {"type": "tun", "metadata": {"NET": "10.0.0.1/24", "Interface": "eth0", "Retries": "3"}},
         "metadata": {"NET": "10.0.0.1/24", "Interface": "eth0", "Retries": "3", "interface": "eth0"},
     }]}),
    ("no arguments", [], [], {"services": []}),
]
