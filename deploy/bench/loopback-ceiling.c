/*
 * loopback-ceiling: how many small TCP writes per second this machine's loopback takes, with
 * nothing else in the way. It bounds what any push server (Herald, nchan) can do here when each
 * event is its own write, and so what latency a fan-out of N subscribers x R events/s can have.
 *
 * One process writes MSG-byte messages round robin to N accepted sockets as fast as they take
 * them (non-blocking; a full socket is skipped); a second process reads all N with epoll, like
 * a bench generator. After SECONDS, each prints its count and its own CPU time.
 *
 *   cc -O2 -o /tmp/loopback-ceiling deploy/bench/loopback-ceiling.c
 *   /tmp/loopback-ceiling 10000 150 5      # N, MSG bytes, SECONDS
 *
 * Why C and not herald bench: the point is a floor with no runtime, no framing and no server
 * logic at all, so that the gap to it is ours.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static double cpu_seconds(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s CONNECTIONS MSG_BYTES SECONDS\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[1]), size = atoi(argv[2]);
    double seconds = atof(argv[3]);
    struct rlimit lim;
    getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);

    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) || listen(listener, 4096)) die("listen");
    socklen_t len = sizeof addr;
    getsockname(listener, (struct sockaddr *)&addr, &len);

    pid_t reader = fork();
    if (reader == 0) {
        /* The reader: N connections from 127.0.0.2..5, drained with epoll. */
        close(listener);
        int ep = epoll_create1(0);
        for (int i = 0; i < n; i++) {
            int s = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000002 + i % 4)};
            if (bind(s, (struct sockaddr *)&src, sizeof src) || connect(s, (struct sockaddr *)&addr, sizeof addr))
                die("connect");
            fcntl(s, F_SETFL, O_NONBLOCK);
            struct epoll_event ev = {.events = EPOLLIN, .data.fd = s};
            epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
        }
        static char buf[65536];
        struct epoll_event events[256];
        long long bytes = 0, reads = 0;
        double start = 0, cpu0 = 0, last = 0, cpu_last = 0;
        int open = n;
        while (open > 0) {
            int k = epoll_wait(ep, events, 256, 10000);
            if (k <= 0) break;
            if (start == 0) start = now(), cpu0 = cpu_seconds();
            for (int j = 0; j < k; j++) {
                ssize_t r = read(events[j].data.fd, buf, sizeof buf);
                if (r > 0) {
                    bytes += r, reads++;
                } else if (r == 0) {
                    /* The writer is done: what came before this counts. */
                    if (last == 0) last = now(), cpu_last = cpu_seconds();
                    close(events[j].data.fd);
                    open--;
                }
            }
        }
        if (last == 0) last = now(), cpu_last = cpu_seconds();
        double took = last - start;
        printf("reader: %lld messages in %lld reads, %.0f messages/s, %.2f messages per read, %.2f CPU\n",
               bytes / size, reads, bytes / size / took, (double)bytes / size / (reads ? reads : 1),
               (cpu_last - cpu0) / took);
        return 0;
    }

    int *socks = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) {
        socks[i] = accept(listener, NULL, NULL);
        if (socks[i] < 0) die("accept");
        fcntl(socks[i], F_SETFL, O_NONBLOCK);
    }
    char *msg = malloc(size);
    memset(msg, 'x', size);
    msg[size - 2] = msg[size - 1] = '\n';
    long long writes = 0, full = 0;
    double start = now(), cpu0 = cpu_seconds();
    while (now() - start < seconds) {
        for (int i = 0; i < n; i++) {
            if (write(socks[i], msg, size) == size) writes++;
            else full++;
        }
    }
    double took = now() - start;
    printf("writer: %d connections, %d-byte writes: %.0f writes/s (%lld skipped, socket full), %.2f CPU\n", n, size,
           writes / took, full, (cpu_seconds() - cpu0) / took);
    fflush(stdout);
    for (int i = 0; i < n; i++) close(socks[i]);
    waitpid(reader, NULL, 0);
    return 0;
}
