/* Load generator for bench/capacity.bench.ts: one process behaves like a stream of timer-mode agent runs.
 * Each run opens a NEW TCP + TLS connection (mTLS with a real host certificate, TLS 1.3 with the agent's
 * groups), sends the steady-state request sequence of an agent run (conditional GETs with the agent's
 * headers, answered 304 when nothing changed) on that one keep-alive connection, and closes it without
 * a close_notify, as `nixfleet agent --once` does from a systemd timer.
 * With "reuse", each run resumes the TLS session of the previous one (TLS 1.3 ticket / session cache),
 * as an agent that keeps its session on disk would.
 * Every POST_EVERY-th run is made as the "poster" identity instead: the same GETs, then one POST /acks
 * of the next pre-signed, chained ack from its file (a host posting its progress, or a converged host
 * its heartbeat: POST_EVERY 1 = every run, the default 60 s heartbeat at the 60 s poll).
 * The first BASE paths are asked in every run; the rest only in every EXTRA_EVERY-th run (the agent's
 * periodic ack loss check: one GET of its own head every ten runs). BASE = all paths: every run asks all.
 * C so that the client is not the bottleneck (node's per-connection overhead is several times OpenSSL's).
 *
 * usage: agent-load HOST PORT SECONDS new|reuse CA CERT KEY POST_EVERY POST_CERT POST_KEY POST_ACKS BASE EXTRA_EVERY PATH ETAG [PATH ETAG...]
 *   POST_EVERY 0 disables posting. Prints one JSON line of counts (requests: every GET and POST sent),
 *   latency percentiles, own CPU time and the bytes on the wire of all runs (wireBytes, from TCP_INFO). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* TCP_NODELAY, TCP_INFO with tcpi_bytes_sent / tcpi_bytes_received */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "agent-load: %s\n", what);
  ERR_print_errors_fp(stderr);
  exit(2);
}

static SSL_CTX *make_ctx(const char *ca, const char *cert, const char *key) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) die("SSL_CTX_new");
  if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) die("load CA");
  if (SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM) != 1) die("load client certificate");
  if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) die("load client key");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  /* What the agent offers (agent/http-client.ts TLS_OFFER): TLS 1.3 only, X25519 then P-256. */
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1) die("TLS 1.3 only");
  if (SSL_CTX_set1_groups_list(ctx, "X25519:P-256") != 1) die("groups");
  /* Sessions are kept by this program (SSL_get1_session), not by an internal cache. */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  return ctx;
}

/* Reads one HTTP/1.1 response (headers + Content-Length body). Returns the status, or -1. */
static int read_response(SSL *ssl) {
  static char buf[1 << 16];
  size_t have = 0;
  char *end = NULL;
  while (!end) {
    if (have >= sizeof buf - 1) return -1;
    int n = SSL_read(ssl, buf + have, (int)(sizeof buf - 1 - have));
    if (n <= 0) return -1;
    have += (size_t)n;
    buf[have] = 0;
    end = strstr(buf, "\r\n\r\n");
  }
  int status = 0;
  if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) return -1;
  long length = 0;
  char *cl = strcasestr(buf, "\r\ncontent-length:");
  if (cl && cl < end) length = strtol(cl + 17, NULL, 10);
  long body = (long)(have - (size_t)(end + 4 - buf));
  while (body < length) {
    int n = SSL_read(ssl, buf, sizeof buf);
    if (n <= 0) return -1;
    body += n;
  }
  return status;
}

static int write_all(SSL *ssl, const char *p, size_t n) {
  while (n > 0) {
    int w = SSL_write(ssl, p, (int)n);
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 16 || (argc - 14) % 2 != 0) {
    fprintf(stderr, "usage: agent-load HOST PORT SECONDS new|reuse CA CERT KEY POST_EVERY POST_CERT POST_KEY POST_ACKS BASE EXTRA_EVERY PATH ETAG [PATH ETAG...]\n");
    return 2;
  }
  const char *host = argv[1];
  int port = atoi(argv[2]);
  double seconds = atof(argv[3]);
  int reuse = strcmp(argv[4], "reuse") == 0;
  long post_every = atol(argv[8]);
  int npaths = (argc - 14) / 2;
  int base = atoi(argv[12]);
  long extra_every = atol(argv[13]);
  if (base < 1 || base > npaths || extra_every < 1) die("BASE must be 1..paths, EXTRA_EVERY >= 1");

  SSL_CTX *ctx = make_ctx(argv[5], argv[6], argv[7]);
  SSL_CTX *post_ctx = post_every > 0 ? make_ctx(argv[5], argv[9], argv[10]) : NULL;

  /* The pre-signed acks, one JSON document per line. */
  char **acks = NULL;
  size_t nacks = 0, next_ack = 0;
  if (post_every > 0) {
    FILE *f = fopen(argv[11], "r");
    if (!f) die("open POST_ACKS");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
      if (line[len - 1] == '\n') line[len - 1] = 0;
      acks = realloc(acks, (nacks + 1) * sizeof *acks);
      acks[nacks++] = strdup(line);
    }
    fclose(f);
  }

  /* Requests are built once, with the agent's headers (agent/http-client.ts: Host and If-None-Match,
   * nothing else): If-None-Match carries the ETag it cached from its last run. */
  char **reqs = malloc(npaths * sizeof *reqs);
  for (int i = 0; i < npaths; i++) {
    char tmp[2048];
    snprintf(tmp, sizeof tmp, "GET %s HTTP/1.1\r\nHost: %s\r\nIf-None-Match: %s\r\n\r\n", argv[14 + 2 * i], host, argv[15 + 2 * i]);
    reqs[i] = strdup(tmp);
  }

  struct sockaddr_in addr = {0};
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  inet_pton(AF_INET, host, &addr.sin_addr);

  size_t cap_lat = 1 << 16, runs = 0;
  double *lat = malloc(cap_lat * sizeof *lat);
  unsigned long long wire = 0;
  long bad = 0, resumed = 0, not_modified = 0, ok200 = 0, posts = 0, post_ok = 0, post_bad = 0, conn_fail = 0, requests = 0;
  unsigned long attempt = 0;
  SSL_SESSION *session = NULL, *post_session = NULL;
  double start = now_s(), deadline = start + seconds;

  while (now_s() < deadline) {
    int posting = post_ctx && nacks > next_ack && (long)((runs + 1) % (size_t)post_every) == 0;
    int asked = (++attempt % (unsigned long)extra_every) == 0 ? npaths : base;
    SSL_SESSION **sess = posting ? &post_session : &session;
    double t0 = now_s();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
      close(fd);
      conn_fail++;
      continue;
    }
    SSL *ssl = SSL_new(posting ? post_ctx : ctx);
    SSL_set_fd(ssl, fd);
    if (reuse && *sess) SSL_set_session(ssl, *sess);
    int failed = 0;
    if (SSL_connect(ssl) != 1) {
      failed = 1;
      conn_fail++;
    } else {
      if (SSL_session_reused(ssl)) resumed++;
      for (int i = 0; i < asked && !failed; i++) {
        requests++;
        if (write_all(ssl, reqs[i], strlen(reqs[i])) != 0) { failed = 1; break; }
        int st = read_response(ssl);
        if (st == 304) not_modified++;
        else if (st == 200) ok200++;
        else { failed = 1; bad++; }
      }
      if (posting && !failed) {
        const char *body = acks[next_ack++];
        char head[512];
        int hl = snprintf(head, sizeof head, "POST /acks HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n", host, strlen(body));
        posts++;
        requests++;
        if (write_all(ssl, head, (size_t)hl) != 0 || write_all(ssl, body, strlen(body)) != 0) failed = 1;
        else {
          int st = read_response(ssl);
          if (st == 201 || st == 200) post_ok++;
          else post_bad++;
        }
      }
      /* TLS 1.3 tickets arrive after the handshake, with the first response: take the session now. */
      if (reuse && !failed) {
        SSL_SESSION *s = SSL_get1_session(ssl);
        if (s) {
          if (*sess) SSL_SESSION_free(*sess);
          *sess = s;
        }
      }
      /* As the agent ends a run: the socket is closed without a close_notify alert (quiet: the
       * session stays resumable). */
      SSL_set_quiet_shutdown(ssl, 1);
      SSL_shutdown(ssl);
      /* Bytes on the wire both ways (TLS records, handshake included), from the kernel's counters. */
      struct tcp_info ti;
      socklen_t tl = sizeof ti;
      if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0)
        wire += ti.tcpi_bytes_sent + ti.tcpi_bytes_received;
    }
    SSL_free(ssl);
    close(fd);
    if (failed) continue;
    if (runs == cap_lat) lat = realloc(lat, (cap_lat *= 2) * sizeof *lat);
    lat[runs++] = (now_s() - t0) * 1000.0;
  }
  double elapsed = now_s() - start;
  qsort(lat, runs, sizeof *lat, cmp_double);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
  printf("{\"runs\":%zu,\"seconds\":%.3f,\"resumed\":%ld,\"notModified\":%ld,\"ok200\":%ld,\"bad\":%ld,\"connFail\":%ld,"
         "\"posts\":%ld,\"postOk\":%ld,\"postBad\":%ld,\"requests\":%ld,\"p50\":%.2f,\"p99\":%.2f,\"cpuSeconds\":%.3f,\"wireBytes\":%llu}\n",
         runs, elapsed, resumed, not_modified, ok200, bad, conn_fail, posts, post_ok, post_bad, requests,
         runs ? lat[runs / 2] : 0.0, runs ? lat[(size_t)(runs * 0.99)] : 0.0, cpu, wire);
  return 0;
}
