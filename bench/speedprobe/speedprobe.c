// waggle-speedprobe: how fast this CPU, and the memory behind it, run a fixed piece of work
// right now.
//
// A virtual machine's speed moves with its neighbours on the host: shared cores and
// frequency move the CPU's own speed, a shared last-level cache and memory bus move how fast
// it reaches memory, and the network stack lives on the second. The bench cannot remove that
// noise, but it can measure it, with two kinds of sample:
//
//   alu     a dependent chain of xorshift steps: no memory traffic, no system calls, no
//           data-dependent branches; its time changes only when the CPU's speed does.
//   memory  a dependent chain of loads through a buffer far larger than the CPU's private
//           caches, one cache line per step in an order no prefetcher can guess (a
//           full-period linear congruential walk over the lines); its time is the latency
//           of the shared cache and memory.
//
//   waggle-speedprobe --kind alu|memory --samples N --iterations M [--bytes B]
//
// prints {"tool":"waggle-speedprobe","kind":K,"iterations":M,"ns":[t1,...,tN],"check":C}:
// nanoseconds (CLOCK_MONOTONIC) per sample of M steps; C depends on every step, so the work
// cannot be dropped. The caller pins the process to one CPU (taskset).
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SAMPLES 100000
#define LINE 64
#define DEFAULT_BYTES (64ull << 20)

struct line {
	uint64_t next;
	char pad[LINE - sizeof(uint64_t)];
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t alu_chain(uint64_t x, uint64_t steps)
{
	for (uint64_t i = 0; i < steps; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
	}
	return x;
}

static uint64_t memory_chain(const struct line *lines, uint64_t at, uint64_t steps)
{
	for (uint64_t i = 0; i < steps; i++)
		at = lines[at].next;
	return at;
}

/*
 * Links the lines (a power of two of them) into one cycle visiting each once: i -> (a*i + c)
 * mod n has full period when c is odd and a = 1 mod 4 (Hull-Dobell).
 */
static struct line *link_lines(uint64_t count)
{
	struct line *lines = aligned_alloc(LINE, count * sizeof(*lines));
	const uint64_t a = 6364136223846793005ull, c = 1442695040888963407ull;

	if (!lines)
		return NULL;
	for (uint64_t i = 0; i < count; i++)
		lines[i].next = (a * i + c) & (count - 1);
	return lines;
}

static int parse_count(const char *flag, const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || end == s || v == 0 || v > max) {
		fprintf(stderr, "speedprobe: %s wants an integer in 1..%llu, got \"%s\"\n", flag,
			(unsigned long long)max, s);
		return -1;
	}
	*out = v;
	return 0;
}

static int usage(const char *self)
{
	fprintf(stderr,
		"usage: %s --kind alu|memory --samples N --iterations M [--bytes B (memory)]\n",
		self);
	return 2;
}

int main(int argc, char **argv)
{
	uint64_t samples = 0, iterations = 0, bytes = DEFAULT_BYTES, lines_count;
	uint64_t x = 0x9e3779b97f4a7c15ull, *ns;
	struct line *lines = NULL;
	const char *kind = NULL;

	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			return usage(argv[0]);
		if (strcmp(argv[i], "--kind") == 0) {
			kind = argv[++i];
			if (strcmp(kind, "alu") && strcmp(kind, "memory")) {
				fprintf(stderr, "speedprobe: --kind is alu or memory, got \"%s\"\n", kind);
				return 2;
			}
		} else if (strcmp(argv[i], "--samples") == 0) {
			if (parse_count("--samples", argv[++i], MAX_SAMPLES, &samples))
				return 2;
		} else if (strcmp(argv[i], "--iterations") == 0) {
			if (parse_count("--iterations", argv[++i], 1000000000000ull, &iterations))
				return 2;
		} else if (strcmp(argv[i], "--bytes") == 0) {
			if (parse_count("--bytes", argv[++i], 1ull << 40, &bytes))
				return 2;
		} else {
			return usage(argv[0]);
		}
	}
	if (!kind || !samples || !iterations)
		return usage(argv[0]);
	if (strcmp(kind, "memory") == 0) {
		/* the largest power of two of lines that fits in bytes, at least 2 */
		lines_count = 2;
		while (lines_count * 2 * LINE <= bytes)
			lines_count *= 2;
		lines = link_lines(lines_count);
		if (!lines) {
			perror("speedprobe: aligned_alloc");
			return 1;
		}
		x = 0; /* linking wrote every line: no page faults left for the samples */
	}
	ns = calloc(samples, sizeof(*ns));
	if (!ns) {
		perror("speedprobe: calloc");
		return 1;
	}
	for (uint64_t s = 0; s < samples; s++) {
		uint64_t t0 = now_ns();

		x = lines ? memory_chain(lines, x, iterations) : alu_chain(x, iterations);
		ns[s] = now_ns() - t0;
	}
	printf("{\"tool\":\"waggle-speedprobe\",\"kind\":\"%s\",\"iterations\":%llu,\"ns\":[", kind,
	       (unsigned long long)iterations);
	for (uint64_t s = 0; s < samples; s++)
		printf("%s%llu", s ? "," : "", (unsigned long long)ns[s]);
	printf("],\"check\":%llu}\n", (unsigned long long)(x & 0xffff));
	free(ns);
	free(lines);
	return 0;
}
