/* Small helpers the C tests share: sleeping, a loopback UDP socket, this process's thread count. */
#ifndef GX_TEST_NETUTIL_H
#define GX_TEST_NETUTIL_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>

static inline void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A non-blocking UDP socket bound to 127.0.0.1 on a free port; *addr gets its address. */
static inline int udp_bound(struct sockaddr_in *addr) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    socklen_t len = sizeof(*addr);
    getsockname(fd, (struct sockaddr *)addr, &len);
    return fd;
}

/* Threads of this process (from /proc/self/status), -1 when unreadable. */
static inline int threads_now(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    if (f)
        fclose(f);
    return n;
}

#endif
