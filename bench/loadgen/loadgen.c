// waggle-loadgen: an open-loop HTTP/1.1 load generator for fixed request rates.
//
// Why not hey or wrk: hey prints latencies with 0.1 ms resolution and paces each worker with
// a ticker (a slow request delays the next one: coordinated omission); wrk has no fixed-rate
// mode. This sends request k at its intended time t0 + k/rate whatever happened before, so a
// stall shows up as latency of the requests that had to wait, and measures every request:
//   latency = response complete - intended start (what a client arriving at that rate sees)
//   service = response complete - actual start (connect included for a new connection)
// Both go into microsecond histograms printed as one JSON line on stdout.
//
// One thread, epoll, non-blocking sockets, at most --connections requests in flight (more
// wait in a queue, their latency counting from their intended start). --new-connection opens
// one connection per request ("Connection: close": the server closes first, after the
// response; we close once we read its FIN, so TIME_WAIT stays on the server side as with a
// browser talking to a server). Every failure is counted by kind; connect failing with
// EADDRNOTAVAIL (no free ephemeral port) has its own counter.

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { FREE, CONNECTING, WRITING, READING, DRAINING, IDLE };

struct conn {
  int fd;
  enum state state;
  uint64_t intended_ns, start_ns, deadline_ns;
  int server_closes; /* the response said Connection: close */
  size_t written;
  char head[8192];
  size_t head_len;
  long long body_left; /* -1 while the headers are incomplete */
  int status;
};

struct options {
  struct sockaddr_storage addr;
  socklen_t addr_len;
  const char *path, *host;
  double rate, duration_s, warmup_s;
  int connections, new_connection;
  unsigned timeout_ms;
};

static struct options opt = {.path = "/", .rate = 0, .duration_s = 0, .warmup_s = 0,
                             .connections = 64, .timeout_ms = 2000};
static int epfd;
static struct conn *conns;
static char request[1024];
static size_t request_len;
static uint32_t *latency_hist, *service_hist;
static uint64_t hist_size; /* buckets 0..hist_size-1, in microseconds */

/* Counters printed in the JSON line. */
static uint64_t sent, completed, recorded, late, max_queue;
#define ERROR_KINDS 12
static const char *error_names[ERROR_KINDS] = {
    "connect_eaddrnotavail", "connect_refused", "connect_timeout", "connect_other",
    "reset",                 "read_other",      "write_other",     "closed_early",
    "timeout",               "bad_response",    "status_non_2xx",  "socket"};
enum { E_ADDRNOTAVAIL, E_REFUSED, E_CONNTIMEOUT, E_CONNOTHER, E_RESET, E_READ, E_WRITE,
       E_CLOSED, E_TIMEOUT, E_BADRESP, E_STATUS, E_SOCKET };
static uint64_t errors[ERROR_KINDS];
static uint64_t status_counts[600];

static volatile sig_atomic_t interrupted;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *msg) {
  fprintf(stderr, "loadgen: %s\n", msg);
  exit(2);
}

static void record(uint32_t *hist, uint64_t ns) {
  uint64_t us = ns / 1000;
  if (us >= hist_size) us = hist_size - 1;
  hist[us]++;
}

/* --- the queue of requests whose intended time has come but that wait for a slot --- */
static uint64_t *queue;
static size_t queue_cap, queue_head, queue_len;

static void enqueue(uint64_t intended) {
  if (queue_len == queue_cap) {
    size_t cap = queue_cap ? queue_cap * 2 : 1024;
    uint64_t *q = malloc(cap * sizeof *q);
    if (!q) die("out of memory");
    for (size_t i = 0; i < queue_len; i++) q[i] = queue[(queue_head + i) % queue_cap];
    free(queue);
    queue = q;
    queue_cap = cap;
    queue_head = 0;
  }
  queue[(queue_head + queue_len) % queue_cap] = intended;
  queue_len++;
  if (queue_len > max_queue) max_queue = queue_len;
}

static uint64_t dequeue(void) {
  uint64_t v = queue[queue_head];
  queue_head = (queue_head + 1) % queue_cap;
  queue_len--;
  return v;
}

/* --- connections --- */
static void close_conn(struct conn *c) {
  if (c->fd >= 0) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
  }
  c->fd = -1;
  c->state = FREE;
}

static void watch(struct conn *c, uint32_t events, int op) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  if (epoll_ctl(epfd, op, c->fd, &ev) < 0) die("epoll_ctl failed");
}

static void fail(struct conn *c, int kind) {
  errors[kind]++;
  close_conn(c);
}

static int connect_error_kind(int err) {
  switch (err) {
  case EADDRNOTAVAIL: return E_ADDRNOTAVAIL;
  case ECONNREFUSED: return E_REFUSED;
  case ETIMEDOUT: return E_CONNTIMEOUT;
  default: return E_CONNOTHER;
  }
}

static void begin_request(struct conn *c) {
  c->written = 0;
  c->head_len = 0;
  c->body_left = -1;
  c->status = 0;
  c->server_closes = 0;
  c->state = WRITING;
}

/* Starts request (intended at `intended`) on connection slot c: idle keep-alive or free. */
static void dispatch(struct conn *c, uint64_t intended, uint64_t now) {
  c->intended_ns = intended;
  c->start_ns = now;
  c->deadline_ns = now + (uint64_t)opt.timeout_ms * 1000000ull;
  sent++;
  if (now > intended + 1000000ull) late++;
  if (c->state == IDLE) {
    begin_request(c);
    watch(c, EPOLLOUT | EPOLLIN, EPOLL_CTL_MOD);
    return;
  }
  c->fd = socket(opt.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    errors[E_SOCKET]++;
    c->state = FREE;
    return;
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr *)&opt.addr, opt.addr_len) < 0 && errno != EINPROGRESS) {
    fail(c, connect_error_kind(errno));
    return;
  }
  begin_request(c);
  c->state = CONNECTING;
  watch(c, EPOLLOUT, EPOLL_CTL_ADD);
}

static uint64_t t0_ns, warmup_end_ns;

static void complete(struct conn *c, uint64_t now) {
  completed++;
  if (c->status >= 200 && c->status < 300) {
    if (c->intended_ns >= warmup_end_ns) {
      recorded++;
      record(latency_hist, now - c->intended_ns);
      record(service_hist, now - c->start_ns);
    }
  } else {
    errors[E_STATUS]++;
  }
  if (c->status > 0 && c->status < 600) status_counts[c->status]++;
  if (opt.new_connection || c->server_closes) {
    /* Wait for the server's FIN: the server closes first. */
    c->state = DRAINING;
    watch(c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
  } else {
    c->state = IDLE;
    watch(c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
  }
}

/* Parses the status line and the framing headers once "\r\n\r\n" is in c->head. */
static int parse_head(struct conn *c, size_t head_end) {
  if (head_end < 12 || strncmp(c->head, "HTTP/1.", 7) != 0) return -1;
  c->status = atoi(c->head + 9);
  long long length = -1;
  char *line = strstr(c->head, "\r\n");
  while (line && (size_t)(line - c->head) < head_end) {
    line += 2;
    if (strncasecmp(line, "Content-Length:", 15) == 0) length = atoll(line + 15);
    if (strncasecmp(line, "Transfer-Encoding:", 18) == 0) return -1; /* not used by the bench */
    if (strncasecmp(line, "Connection:", 11) == 0 && strncasecmp(line + 11 + strspn(line + 11, " "), "close", 5) == 0)
      c->server_closes = 1;
    line = strstr(line, "\r\n");
  }
  if (length < 0) return -1;
  c->body_left = length;
  return 0;
}

static void on_readable(struct conn *c, uint64_t now) {
  char buf[16384];
  for (;;) {
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EAGAIN) return;
      if (c->state == DRAINING || c->state == IDLE) {
        close_conn(c);
        return;
      }
      fail(c, errno == ECONNRESET ? E_RESET : E_READ);
      return;
    }
    if (n == 0) {
      /* EOF: expected after a response on a new connection, or an idle keep-alive closed. */
      if (c->state == DRAINING || c->state == IDLE) close_conn(c);
      else fail(c, E_CLOSED);
      return;
    }
    if (c->state == DRAINING || c->state == IDLE) {
      fail(c, E_BADRESP); /* bytes nobody asked for */
      return;
    }
    if (c->body_left < 0) {
      size_t take = (size_t)n;
      if (take > sizeof c->head - 1 - c->head_len) take = sizeof c->head - 1 - c->head_len;
      memcpy(c->head + c->head_len, buf, take);
      c->head_len += take;
      c->head[c->head_len] = 0;
      char *end = strstr(c->head, "\r\n\r\n");
      if (!end) {
        if (c->head_len >= sizeof c->head - 1) {
          fail(c, E_BADRESP);
          return;
        }
        continue;
      }
      size_t head_end = (size_t)(end - c->head) + 4;
      if (parse_head(c, head_end) < 0) {
        fail(c, E_BADRESP);
        return;
      }
      /* Body bytes: those copied after the head plus those of this read not copied. */
      c->body_left -= (long long)(c->head_len - head_end) + (long long)((size_t)n - take);
    } else {
      c->body_left -= n;
    }
    if (c->body_left < 0) {
      fail(c, E_BADRESP);
      return;
    }
    if (c->body_left == 0) {
      complete(c, now);
      return;
    }
  }
}

static void on_writable(struct conn *c) {
  if (c->state == CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
      fail(c, connect_error_kind(err));
      return;
    }
    c->state = WRITING;
  }
  while (c->written < request_len) {
    ssize_t n = write(c->fd, request + c->written, request_len - c->written);
    if (n < 0) {
      if (errno == EAGAIN) return;
      fail(c, errno == ECONNRESET || errno == EPIPE ? E_RESET : E_WRITE);
      return;
    }
    c->written += (size_t)n;
  }
  c->state = READING;
  watch(c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
}

static int parse_target(const char *s) {
  char host[256];
  const char *colon = strrchr(s, ':');
  if (!colon || (size_t)(colon - s) >= sizeof host) return -1;
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = 0;
  int port = atoi(colon + 1);
  if (port <= 0 || port > 65535) return -1;
  char *h = host;
  if (h[0] == '[') {
    h++;
    h[strlen(h) - 1] = 0;
  }
  struct sockaddr_in *a4 = (struct sockaddr_in *)&opt.addr;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&opt.addr;
  if (inet_pton(AF_INET, h, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    opt.addr_len = sizeof *a4;
  } else if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    opt.addr_len = sizeof *a6;
  } else {
    return -1;
  }
  return 0;
}

static void print_hist(const char *name, const uint32_t *hist) {
  printf(",\"%s\":[", name);
  int first = 1;
  for (uint64_t i = 0; i < hist_size; i++) {
    if (!hist[i]) continue;
    printf("%s[%llu,%u]", first ? "" : ",", (unsigned long long)i, hist[i]);
    first = 0;
  }
  printf("]");
}

static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen --target ADDR:PORT --rate RPS --duration S [--warmup S]\n"
          "               [--connections N] [--new-connection] [--timeout-ms MS]\n"
          "               [--path P] [--host H]\n");
  exit(2);
}

int main(int argc, char **argv) {
  static struct option longopts[] = {
      {"target", required_argument, 0, 't'},    {"rate", required_argument, 0, 'r'},
      {"duration", required_argument, 0, 'd'},  {"warmup", required_argument, 0, 'w'},
      {"connections", required_argument, 0, 'c'}, {"new-connection", no_argument, 0, 'n'},
      {"timeout-ms", required_argument, 0, 'T'}, {"path", required_argument, 0, 'p'},
      {"host", required_argument, 0, 'H'},      {0, 0, 0, 0}};
  int have_target = 0, ch;
  while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (ch) {
    case 't': if (parse_target(optarg) < 0) die("invalid --target (ADDR:PORT, [v6]:PORT)"); have_target = 1; break;
    case 'r': opt.rate = atof(optarg); break;
    case 'd': opt.duration_s = atof(optarg); break;
    case 'w': opt.warmup_s = atof(optarg); break;
    case 'c': opt.connections = atoi(optarg); break;
    case 'n': opt.new_connection = 1; break;
    case 'T': opt.timeout_ms = (unsigned)atoi(optarg); break;
    case 'p': opt.path = optarg; break;
    case 'H': opt.host = optarg; break;
    default: usage();
    }
  }
  if (!have_target || optind != argc) usage();
  if (!(opt.rate > 0 && opt.rate <= 1e6)) die("--rate must be in (0, 1000000]");
  if (!(opt.duration_s > 0 && opt.duration_s <= 3600)) die("--duration must be in (0, 3600]");
  if (!(opt.warmup_s >= 0 && opt.warmup_s <= 600)) die("--warmup must be in [0, 600]");
  if (opt.connections < 1 || opt.connections > 60000) die("--connections must be in 1..60000");
  if (opt.timeout_ms < 1 || opt.timeout_ms > 60000) die("--timeout-ms must be in 1..60000");
  if (strlen(opt.path) > 512 || opt.path[0] != '/') die("--path must start with / (at most 512)");

  char hostbuf[300];
  if (!opt.host) {
    char ip[INET6_ADDRSTRLEN];
    if (opt.addr.ss_family == AF_INET)
      inet_ntop(AF_INET, &((struct sockaddr_in *)&opt.addr)->sin_addr, ip, sizeof ip);
    else
      inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&opt.addr)->sin6_addr, ip, sizeof ip);
    snprintf(hostbuf, sizeof hostbuf, opt.addr.ss_family == AF_INET6 ? "[%s]" : "%s", ip);
    opt.host = hostbuf;
  }
  int len = snprintf(request, sizeof request,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: waggle-bench\r\n%s\r\n", opt.path,
                     opt.host, opt.new_connection ? "Connection: close\r\n" : "");
  if (len <= 0 || (size_t)len >= sizeof request) die("request too long");
  request_len = (size_t)len;

  hist_size = (uint64_t)opt.timeout_ms * 1000 + 2;
  latency_hist = calloc(hist_size, sizeof *latency_hist);
  service_hist = calloc(hist_size, sizeof *service_hist);
  conns = calloc((size_t)opt.connections, sizeof *conns);
  if (!latency_hist || !service_hist || !conns) die("out of memory");
  for (int i = 0; i < opt.connections; i++) conns[i].fd = -1;
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) die("epoll_create1 failed");
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGPIPE, SIG_IGN);

  const double interval_ns = 1e9 / opt.rate;
  const uint64_t total = (uint64_t)((opt.warmup_s + opt.duration_s) * opt.rate + 0.5);
  t0_ns = now_ns();
  warmup_end_ns = t0_ns + (uint64_t)(opt.warmup_s * 1e9);
  uint64_t scheduled = 0;
  struct epoll_event events[256];
  uint64_t hard_stop = 0;

  while (!interrupted) {
    uint64_t now = now_ns();
    while (scheduled < total && t0_ns + (uint64_t)(scheduled * interval_ns) <= now) {
      enqueue(t0_ns + (uint64_t)(scheduled * interval_ns));
      scheduled++;
    }
    /* Hand queued requests to idle keep-alive connections first, then to free slots. */
    for (int pass = 0; pass < 2 && queue_len > 0; pass++) {
      for (int i = 0; i < opt.connections && queue_len > 0; i++) {
        struct conn *c = &conns[i];
        if ((pass == 0 && c->state == IDLE && !opt.new_connection) || (pass == 1 && c->state == FREE))
          dispatch(c, dequeue(), now);
      }
    }
    /* Timeouts. */
    int busy = 0;
    for (int i = 0; i < opt.connections; i++) {
      struct conn *c = &conns[i];
      if (c->state == FREE || c->state == IDLE) continue;
      if (now > c->deadline_ns) {
        if (c->state == DRAINING) close_conn(c);
        else fail(c, E_TIMEOUT);
        continue;
      }
      if (c->state != DRAINING) busy++;
    }
    if (scheduled == total && queue_len == 0 && busy == 0) break;
    if (scheduled == total && !hard_stop) hard_stop = now + (uint64_t)opt.timeout_ms * 1000000ull * 2;
    if (hard_stop && now > hard_stop) break;

    uint64_t wait_ns = 10000000ull; /* 10 ms: timeouts are checked at least this often */
    if (scheduled < total) {
      uint64_t next = t0_ns + (uint64_t)(scheduled * interval_ns);
      wait_ns = next > now ? next - now : 0;
      if (wait_ns > 10000000ull) wait_ns = 10000000ull;
    }
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)wait_ns};
    int n = epoll_pwait2(epfd, events, 256, &ts, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_pwait2 failed");
    }
    now = now_ns();
    for (int i = 0; i < n; i++) {
      struct conn *c = events[i].data.ptr;
      if (c->fd < 0) continue;
      uint32_t ev = events[i].events;
      if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        if (c->state == CONNECTING && (ev & (EPOLLERR | EPOLLHUP))) {
          on_writable(c); /* reads SO_ERROR */
          continue;
        }
        if (c->state == READING || c->state == DRAINING || c->state == IDLE) {
          on_readable(c, now);
          continue;
        }
      }
      if (ev & EPOLLOUT) on_writable(c);
    }
  }

  uint64_t elapsed_ns = now_ns() - t0_ns;
  uint64_t in_flight = 0;
  for (int i = 0; i < opt.connections; i++) {
    if (conns[i].state != FREE && conns[i].state != IDLE && conns[i].state != DRAINING) in_flight++;
    close_conn(&conns[i]);
  }
  printf("{\"tool\":\"waggle-loadgen\",\"rate\":%.3f,\"durationS\":%.3f,\"warmupS\":%.3f,"
         "\"newConnection\":%s,\"connections\":%d,\"scheduled\":%llu,\"sent\":%llu,"
         "\"completed\":%llu,\"recorded\":%llu,\"unsent\":%llu,\"inFlightAtEnd\":%llu,"
         "\"late\":%llu,\"maxQueue\":%llu,\"elapsedUs\":%llu,\"interrupted\":%s,\"errors\":{",
         opt.rate, opt.duration_s, opt.warmup_s, opt.new_connection ? "true" : "false",
         opt.connections, (unsigned long long)scheduled, (unsigned long long)sent,
         (unsigned long long)completed, (unsigned long long)recorded,
         (unsigned long long)(total - sent), (unsigned long long)in_flight,
         (unsigned long long)late, (unsigned long long)max_queue,
         (unsigned long long)(elapsed_ns / 1000), interrupted ? "true" : "false");
  for (int i = 0; i < ERROR_KINDS; i++)
    printf("%s\"%s\":%llu", i ? "," : "", error_names[i], (unsigned long long)errors[i]);
  printf("},\"status\":{");
  int first = 1;
  for (int s = 0; s < 600; s++) {
    if (!status_counts[s]) continue;
    printf("%s\"%d\":%llu", first ? "" : ",", s, (unsigned long long)status_counts[s]);
    first = 0;
  }
  printf("}");
  print_hist("latencyUs", latency_hist);
  print_hist("serviceUs", service_hist);
  printf("}\n");
  return interrupted ? 130 : 0;
}
