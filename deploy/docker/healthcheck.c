/*
 * healthcheck: a tiny static HTTP probe for the distroless service images, which have no shell
 * and no curl. Used only by docker-compose healthchecks (Kubernetes uses httpGet probes).
 *
 *   healthcheck [PORT [PATH]]      default: 8080 /readyz
 *
 * Connects to 127.0.0.1:PORT, sends "GET PATH HTTP/1.0", exits 0 on a 2xx status, 1 otherwise.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *port_s = argc > 1 ? argv[1] : "8080";
    const char *path = argc > 2 ? argv[2] : "/readyz";
    long port = strtol(port_s, NULL, 10);
    if (port <= 0 || port > 65535 || path[0] != '/' || strlen(path) > 200) {
        fprintf(stderr, "usage: healthcheck [PORT [PATH]]\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) { perror("socket"); return 1; }
    struct timeval tv = { .tv_sec = 3, .tv_usec = 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) { perror("connect"); return 1; }
    char req[300];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) { perror("write"); return 1; }
    char buf[64];
    ssize_t got = 0, r;
    while (got < (ssize_t)sizeof buf - 1 && (r = read(fd, buf + got, sizeof buf - 1 - (size_t)got)) > 0) {
        got += r;
        if (memchr(buf, '\n', (size_t)got)) break;
    }
    close(fd);
    buf[got > 0 ? got : 0] = '\0';
    /* "HTTP/1.x 2xx ..." */
    if (got >= 12 && strncmp(buf, "HTTP/1.", 7) == 0 && buf[9] == '2') return 0;
    fprintf(stderr, "healthcheck: %s%s: %.40s\n", port_s, path, got > 0 ? buf : "(no response)");
    return 1;
}
