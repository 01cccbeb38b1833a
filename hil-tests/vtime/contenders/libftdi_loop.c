/*
 * libftdi_loop: the incident's request/reply loop on libftdi1, the peer a
 * user would pick for userspace FTDI access today. One of the three
 * contenders of the timing tier (hil-tests/src/timing/), run by the guest
 * program with the same device, loop, load and priority as ftdi-rt's
 * userspace path and the kernel path.
 *
 * libftdi is synchronous: ftdi_write_data() sends the request, then
 * ftdi_read_data() is called until the reply is in hand or the deadline has
 * passed. Each read is one bulk-IN transfer that ends on the chip's next
 * packet (a status-only packet when the latency timer expires), so the loop
 * polls once per latency-timer period; between two reads no IN transfer is
 * pending and the chip keeps what it receives. One thread does everything,
 * at the application's priority: there is no separate reader.
 *
 * A miss is recorded at the moment the loop gave up (or at the late reply's
 * arrival, if it came in the read that crossed the deadline); the late reply
 * is then read and discarded before the next request, as ftdi-rt's
 * Port::transact settles a missed reply, so it is never taken for the next
 * answer.
 *
 * Output (stdout, after the loop, so printing cannot disturb it):
 *   L <us>    a reply in time, latency in microseconds
 *   M <us>    a deadline miss, time given up (or late reply) in microseconds
 *   W <us>    a reply in time but not the frobnicator's answer
 *   E n=<N> misses=<M> wrong=<W> late_settled=<S>   the end line
 * Errors: one "X <what went wrong>" line on stdout, exit status 1; bad
 * usage exit status 2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <ftdi.h>

#define REQUEST_LEN 7
/* The settle wait after a miss, in deadlines (as ftdi-rt's transact). */
#define SETTLE_DEADLINES 10

struct options {
    int vid, pid;
    enum ftdi_interface interface;
    long n;
    long warmup; /* transactions run first and not counted */
    long deadline_us;
    int baud;
    int latency_ms;
    int priority; /* SCHED_FIFO priority, 0 = leave the policy alone */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The request of transaction i: the same bytes the Rust contenders send. */
static void request_for(long i, unsigned char *req)
{
    for (int k = 0; k < REQUEST_LEN; k++)
        req[k] = (unsigned char)((unsigned long)i * 31u + (unsigned long)k);
}

/* The frobnicator's answer: the wrapping sum of the request's bytes. */
static unsigned char frob_reply(const unsigned char *req)
{
    unsigned char sum = 0;
    for (int k = 0; k < REQUEST_LEN; k++)
        sum = (unsigned char)(sum + req[k]);
    return sum;
}

static int usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [-v vid] [-p pid] [-i A|B|C|D] [-n transactions] [-w warmup] [-d deadline_us]\n"
            "          [-b baud] [-l latency_ms] [-r fifo_priority (0: none)]\n",
            argv0);
    return 2;
}

static int parse(int argc, char **argv, struct options *o)
{
    *o = (struct options){0x0403, 0x6001, INTERFACE_A, 2000, 20, 3500, 115200, 1, 70};
    for (int a = 1; a < argc; a += 2) {
        if (a + 1 >= argc || argv[a][0] != '-' || argv[a][2] != '\0')
            return -1;
        char *end = NULL;
        const char *v = argv[a + 1];
        long x = strtol(v, &end, 0);
        int numeric = end && *end == '\0' && end != v;
        switch (argv[a][1]) {
        case 'v': o->vid = (int)x; break;
        case 'p': o->pid = (int)x; break;
        case 'n': o->n = x; break;
        case 'w': o->warmup = x; break;
        case 'd': o->deadline_us = x; break;
        case 'b': o->baud = (int)x; break;
        case 'l': o->latency_ms = (int)x; break;
        case 'r': o->priority = (int)x; break;
        case 'i':
            if (v[1] != '\0' || v[0] < 'A' || v[0] > 'D')
                return -1;
            o->interface = (enum ftdi_interface)(INTERFACE_A + (v[0] - 'A'));
            continue;
        default: return -1;
        }
        if (!numeric)
            return -1;
    }
    if (o->n < 1 || o->n > 10000000 || o->warmup < 0 || o->warmup > 10000 || o->deadline_us < 1 || o->deadline_us > 60000000 ||
        o->baud < 1 || o->latency_ms < 1 || o->latency_ms > 255 || o->priority < 0 ||
        o->priority > 99)
        return -1;
    return 0;
}

/* Realtime as the Rust application thread gets it: memory locked, FIFO. */
static int make_realtime(int priority)
{
    if (priority == 0)
        return 0;
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
        printf("X mlockall: %s\n", strerror(errno));
        return -1;
    }
    struct sched_param sp = {.sched_priority = priority};
    if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0) {
        printf("X sched_setscheduler(SCHED_FIFO %d): %s\n", priority, strerror(errno));
        return -1;
    }
    return 0;
}

static int fail(struct ftdi_context *ftdi, const char *what, int rc)
{
    printf("X %s: %d (%s)\n", what, rc, ftdi_get_error_string(ftdi));
    return 1;
}

/* Reads and discards the rest of a missed reply: up to `owed` bytes, for at
 * most SETTLE_DEADLINES deadlines. Returns the bytes discarded, or <0. */
static int settle(struct ftdi_context *ftdi, int owed, const struct options *o)
{
    unsigned char junk[64];
    uint64_t until = now_ns() + (uint64_t)o->deadline_us * 1000u * SETTLE_DEADLINES;
    int got = 0;
    while (got < owed && now_ns() < until) {
        int r = ftdi_read_data(ftdi, junk, owed - got);
        if (r < 0)
            return r;
        got += r;
    }
    return got;
}

int main(int argc, char **argv)
{
    struct options o;
    if (parse(argc, argv, &o) != 0)
        return usage(argv[0]);

    /* Results are kept and printed after the loop. */
    uint32_t *lat_us = calloc((size_t)o.n, sizeof *lat_us);
    char *kind = calloc((size_t)o.n, 1);
    if (!lat_us || !kind) {
        printf("X out of memory for %ld results\n", o.n);
        return 1;
    }
    if (make_realtime(o.priority) != 0)
        return 1;

    struct ftdi_context *ftdi = ftdi_new();
    if (!ftdi) {
        printf("X ftdi_new failed (libusb_init: is there a USB subsystem, usbfs in /dev/bus/usb?)\n");
        return 1;
    }
    int rc;
    if ((rc = ftdi_set_interface(ftdi, o.interface)) < 0)
        return fail(ftdi, "ftdi_set_interface", rc);
    /* Give the interface back to ftdi_sio on close, as ftdi-rt does. */
    ftdi->module_detach_mode = AUTO_DETACH_REATACH_SIO_MODULE;
    if ((rc = ftdi_usb_open(ftdi, o.vid, o.pid)) < 0)
        return fail(ftdi, "ftdi_usb_open", rc);
    if ((rc = ftdi_usb_reset(ftdi)) < 0)
        return fail(ftdi, "ftdi_usb_reset", rc);
    if ((rc = ftdi_set_baudrate(ftdi, o.baud)) < 0)
        return fail(ftdi, "ftdi_set_baudrate", rc);
    if ((rc = ftdi_set_line_property(ftdi, BITS_8, STOP_BIT_1, NONE)) < 0)
        return fail(ftdi, "ftdi_set_line_property", rc);
    if ((rc = ftdi_setflowctrl(ftdi, SIO_DISABLE_FLOW_CTRL)) < 0)
        return fail(ftdi, "ftdi_setflowctrl", rc);
    if ((rc = ftdi_setdtr_rts(ftdi, 1, 1)) < 0)
        return fail(ftdi, "ftdi_setdtr_rts", rc);
    if ((rc = ftdi_set_latency_timer(ftdi, (unsigned char)o.latency_ms)) < 0)
        return fail(ftdi, "ftdi_set_latency_timer", rc);
    if ((rc = ftdi_tcioflush(ftdi)) < 0)
        return fail(ftdi, "ftdi_tcioflush", rc);
    /* A read never waits longer than the deadline (rounded up to ms). */
    ftdi->usb_read_timeout = (int)((o.deadline_us + 999) / 1000);

    long misses = 0, wrong = 0, settled = 0;
    const uint64_t deadline_ns = (uint64_t)o.deadline_us * 1000u;
    for (long i = 0; i < o.warmup + o.n; i++) {
        unsigned char req[REQUEST_LEN], reply = 0;
        request_for(i, req);
        uint64_t t0 = now_ns();
        if ((rc = ftdi_write_data(ftdi, req, REQUEST_LEN)) != REQUEST_LEN)
            return fail(ftdi, "ftdi_write_data", rc);
        int got = 0;
        uint64_t t = t0;
        while (got == 0 && t - t0 < deadline_ns) {
            rc = ftdi_read_data(ftdi, &reply, 1);
            t = now_ns();
            if (rc < 0)
                return fail(ftdi, "ftdi_read_data", rc);
            got = rc;
        }
        int missed = got == 0 || t - t0 > deadline_ns;
        if (missed && got == 0) {
            int s = settle(ftdi, 1, &o);
            if (s < 0)
                return fail(ftdi, "ftdi_read_data (settling a missed reply)", s);
            settled += s;
        }
        if (i < o.warmup)
            continue;
        long j = i - o.warmup;
        uint64_t us = (t - t0) / 1000u;
        lat_us[j] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
        if (missed) {
            kind[j] = 'M';
            misses++;
        } else if (reply != frob_reply(req)) {
            kind[j] = 'W';
            wrong++;
        } else {
            kind[j] = 'L';
        }
    }

    ftdi_usb_close(ftdi);
    ftdi_free(ftdi);
    for (long i = 0; i < o.n; i++)
        printf("%c %u\n", kind[i], (unsigned)lat_us[i]);
    printf("E n=%ld misses=%ld wrong=%ld late_settled=%ld\n", o.n, misses, wrong, settled);
    return 0;
}
