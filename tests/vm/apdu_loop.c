/*
 * apdu_loop: a PC/SC client of the virtual test bed. Sends a few thousand
 * APDUs to QEMU's emulated CAC card (libcacard behind QEMU's usb-ccid reader)
 * whose responses have every data length from 0 to 256, so that the CCID
 * answers (10-byte header + data + SW1 SW2) cross every multiple of the
 * reader's 64-byte packet size. Checks each response's length, status word
 * and, where the card's data is known, the data itself.
 *
 * It runs in the test guest (tests/vm/scenarios/qemu-ccid.sh) against pcscd
 * and whichever driver bundle is installed there; it is built on the host by
 * tests/vm/setup.sh.
 *
 * What the card does (libcacard 2.8, src/cac.c and src/card_7816.c):
 *  - SELECT of a PKI applet (AID A0 00 00 00 79 01 0i, certificate i+1) sent
 *    without Le answers 61 0D; GET RESPONSE with Le=0D gives its 13-byte FCI
 *    6F 0B 84 07 <AID> A5 00.
 *  - READ BUFFER 80 52 P1 P2 02 02 L (no Le) reads L bytes of the applet's value
 *    buffer at offset P1P2. Without Le the card keeps them and answers 61 L
 *    (90 00 with no data when L = 0); GET RESPONSE 00 C0 00 00 L then returns
 *    exactly those L bytes + 90 00. The value buffer is
 *    LE16(1 + len(cert)) || 00 (CertInfo: not compressed) || cert (DER),
 *    so the data is known from the certificate file setup.sh exported.
 *  - SIGN/DECRYPT 80 42 80 00 80 <128 bytes> then 80 42 00 00 80 <128 bytes>
 *    (raw RSA-2048 over a PKCS#1 type 1 block) answers 61 00; GET RESPONSE
 *    00 C0 00 00 00 returns the 256-byte result + 90 00. RSA with this padding
 *    is deterministic: every round must see the same 256 bytes.
 *  - GET PROPERTIES 80 56 01 00 20 (case 2, Le = the properties' size 0x20)
 *    answers the 32 bytes directly + 90 00; they must not change either.
 *
 * Usage: apdu_loop [-r READER_SUBSTRING] [-n ROUNDS] [-t SECONDS] [-v] CERT1.der
 * Prints "apdu_loop: N passed, M failed" (APDUs) as its last line; exits 0 only
 * when nothing failed. APDUs that could not be sent because the reader stopped
 * answering or time ran out count as failed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <winscard.h>

#define MAX_CERT 4096
#define MAX_RESP 1024
#define MAX_DATA_LEN 256          /* data lengths checked: 0..256 */
#define MAX_FAILURE_LINES 30      /* detailed failure lines printed */
#define MAX_CONSECUTIVE_ERRORS 10 /* SCardTransmit errors before giving up */

/* Expectation for one APDU. data == NULL: the data is not known in advance. */
struct expect {
    size_t len;           /* data length, without SW1 SW2 */
    uint16_t sw;
    const uint8_t *data;
    size_t tested;        /* the data length this exchange is part of testing */
};

struct loop {
    SCARDCONTEXT ctx;
    SCARDHANDLE card;
    bool verbose;
    double deadline;              /* CLOCK_MONOTONIC seconds */
    unsigned long passed, failed, sent;
    unsigned long skipped;        /* not sent: the exchange before failed */
    unsigned consecutive_errors;
    bool gave_up;
    bool length_failed[MAX_DATA_LEN + 1];
    double *latency_ms;           /* one per APDU sent */
    size_t latency_cap;
    uint8_t last[MAX_RESP];       /* last response (data + SW) */
    DWORD last_len;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void hex(FILE *f, const uint8_t *p, size_t n, size_t max)
{
    size_t i;

    for (i = 0; i < n && i < max; i++)
        fprintf(f, "%02X", p[i]);
    if (n > max)
        fprintf(f, "...(%zu bytes)", n);
}

/* Records one failed APDU, with details for the first few. */
static void fail(struct loop *lp, const uint8_t *apdu, size_t apdu_len,
                 const struct expect *ex, const char *why)
{
    lp->failed++;
    if (ex->tested <= MAX_DATA_LEN)
        lp->length_failed[ex->tested] = true;
    if (lp->failed > MAX_FAILURE_LINES)
        return;
    printf("FAIL apdu #%lu ", lp->sent);
    hex(stdout, apdu, apdu_len, 16);
    printf(": %s; expected %zu data bytes + %04X, got ", why, ex->len, ex->sw);
    hex(stdout, lp->last, lp->last_len, 24);
    printf("\n");
    if (lp->failed == MAX_FAILURE_LINES)
        printf("(further failures are only counted)\n");
}

/*
 * Sends one APDU and checks the answer against ex. Returns true when the
 * exchange matched. Counts the APDU as passed or failed.
 */
static bool xfer(struct loop *lp, const uint8_t *apdu, size_t apdu_len,
                 const struct expect *ex)
{
    double t0;
    LONG rv;
    size_t dlen;
    uint16_t sw;

    lp->last_len = sizeof(lp->last);
    t0 = now_s();
    rv = SCardTransmit(lp->card, SCARD_PCI_T0, apdu, (DWORD)apdu_len, NULL,
                       lp->last, &lp->last_len);
    if (lp->sent < lp->latency_cap)
        lp->latency_ms[lp->sent] = (now_s() - t0) * 1000.0;
    lp->sent++;

    if (rv != SCARD_S_SUCCESS) {
        char why[128];

        lp->last_len = 0;
        snprintf(why, sizeof(why), "SCardTransmit: %s (0x%08lX)",
                 pcsc_stringify_error(rv), (unsigned long)rv);
        fail(lp, apdu, apdu_len, ex, why);
        if (++lp->consecutive_errors >= MAX_CONSECUTIVE_ERRORS) {
            printf("apdu_loop: %u transmit errors in a row, giving up\n",
                   lp->consecutive_errors);
            lp->gave_up = true;
        }
        return false;
    }
    lp->consecutive_errors = 0;
    if (lp->verbose) {
        printf("> ");
        hex(stdout, apdu, apdu_len, 12);
        printf("  < ");
        hex(stdout, lp->last, lp->last_len, 12);
        printf("\n");
    }
    if (lp->last_len < 2) {
        fail(lp, apdu, apdu_len, ex, "response shorter than a status word");
        return false;
    }
    dlen = lp->last_len - 2;
    sw = (uint16_t)(lp->last[dlen] << 8 | lp->last[dlen + 1]);
    if (dlen != ex->len) {
        fail(lp, apdu, apdu_len, ex, "wrong data length");
        return false;
    }
    if (sw != ex->sw) {
        fail(lp, apdu, apdu_len, ex, "wrong status word");
        return false;
    }
    if (ex->data != NULL && memcmp(lp->last, ex->data, dlen) != 0) {
        fail(lp, apdu, apdu_len, ex, "wrong data");
        return false;
    }
    lp->passed++;
    return true;
}

/* Exchanges left out because the one they depend on failed count as failed. */
static void skip(struct loop *lp, unsigned long n)
{
    lp->skipped += n;
    lp->failed += n;
}

static bool stop(const struct loop *lp)
{
    return lp->gave_up || now_s() > lp->deadline;
}

/* The card's value buffer of PKI applet 0: LE16(1+n) 00 cert. */
struct vbuf {
    uint8_t b[MAX_CERT + 3];
    size_t len;
};

static int load_vbuf(const char *path, struct vbuf *vb)
{
    FILE *f = fopen(path, "rb");
    size_t n;

    if (f == NULL) {
        fprintf(stderr, "apdu_loop: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    n = fread(vb->b + 3, 1, MAX_CERT, f);
    fclose(f);
    if (n < MAX_DATA_LEN || n >= MAX_CERT) {
        fprintf(stderr, "apdu_loop: %s: %zu bytes, expected %d..%d\n", path, n,
                MAX_DATA_LEN, MAX_CERT - 1);
        return -1;
    }
    vb->b[0] = (uint8_t)((n + 1) & 0xFF);
    vb->b[1] = (uint8_t)((n + 1) >> 8);
    vb->b[2] = 0x00;
    vb->len = n + 3;
    return 0;
}

/* SELECT PKI applet 0 (no Le: 61 0D), then GET RESPONSE of its FCI. */
static void select_pki0(struct loop *lp)
{
    static const uint8_t select[] = { 0x00, 0xA4, 0x04, 0x00, 0x07,
                                      0xA0, 0x00, 0x00, 0x00, 0x79, 0x01, 0x00 };
    static const uint8_t get_fci[] = { 0x00, 0xC0, 0x00, 0x00, 0x0D };
    static const uint8_t fci[] = { 0x6F, 0x0B, 0x84, 0x07, 0xA0, 0x00, 0x00,
                                   0x00, 0x79, 0x01, 0x00, 0xA5, 0x00 };
    const struct expect ex_select = { 0, 0x610D, NULL, 0 };
    const struct expect ex_fci = { sizeof(fci), 0x9000, fci, sizeof(fci) };

    xfer(lp, select, sizeof(select), &ex_select);
    xfer(lp, get_fci, sizeof(get_fci), &ex_fci);
}

/*
 * READ BUFFER of len bytes at off (61 len), then GET RESPONSE of exactly those
 * bytes. len 0 is answered 90 00 at once: one APDU, zero data bytes.
 */
static void read_len(struct loop *lp, const struct vbuf *vb, size_t len, size_t off)
{
    uint8_t rb[] = { 0x80, 0x52, (uint8_t)(off >> 8), (uint8_t)off, 0x02, 0x02,
                     (uint8_t)len };
    uint8_t gr[] = { 0x00, 0xC0, 0x00, 0x00, (uint8_t)len };
    struct expect ex_rb = { 0, (uint16_t)(len == 0 ? 0x9000 : 0x6100 | len), NULL, len };
    struct expect ex_gr = { len, 0x9000, vb->b + off, len };

    if (!xfer(lp, rb, sizeof(rb), &ex_rb)) {
        if (len > 0)
            skip(lp, 1);   /* the card holds nothing to GET */
        return;
    }
    if (len > 0)
        xfer(lp, gr, sizeof(gr), &ex_gr);
}

/* 256 data bytes: a chained RSA operation and GET RESPONSE with Le = 00. */
static void sign_256(struct loop *lp, uint8_t *first, bool *have_first)
{
    uint8_t c1[5 + 128] = { 0x80, 0x42, 0x80, 0x00, 0x80 };
    uint8_t c2[5 + 128] = { 0x80, 0x42, 0x00, 0x00, 0x80 };
    uint8_t block[256];
    static const uint8_t gr[] = { 0x00, 0xC0, 0x00, 0x00, 0x00 };
    const struct expect ex_more = { 0, 0x9000, NULL, 256 };
    const struct expect ex_done = { 0, 0x6100, NULL, 256 };
    struct expect ex_sig = { 256, 0x9000, *have_first ? first : NULL, 256 };
    size_t i;

    /* PKCS#1 v1.5 type 1 block: 00 01 FF..FF 00 <20 bytes>. */
    memset(block, 0xFF, sizeof(block));
    block[0] = 0x00;
    block[1] = 0x01;
    block[256 - 21] = 0x00;
    for (i = 0; i < 20; i++)
        block[256 - 20 + i] = (uint8_t)i;
    memcpy(c1 + 5, block, 128);
    memcpy(c2 + 5, block + 128, 128);

    if (!xfer(lp, c1, sizeof(c1), &ex_more)) {
        skip(lp, 2);
        return;
    }
    if (!xfer(lp, c2, sizeof(c2), &ex_done)) {
        skip(lp, 1);
        return;
    }
    if (xfer(lp, gr, sizeof(gr), &ex_sig) && !*have_first) {
        memcpy(first, lp->last, 256);
        *have_first = true;
    }
}

/* GET PROPERTIES with Le equal to their size: a direct case-2 answer. */
static void properties(struct loop *lp, uint8_t *first, bool *have_first)
{
    static const uint8_t gp[] = { 0x80, 0x56, 0x01, 0x00, 0x20 };
    struct expect ex = { 0x20, 0x9000, *have_first ? first : NULL, 0x20 };

    if (xfer(lp, gp, sizeof(gp), &ex) && !*have_first) {
        memcpy(first, lp->last, 0x20);
        *have_first = true;
    }
}

/* Order of lengths in a round: up, down, then shuffled (fixed seed). */
static void length_order(unsigned round, size_t order[MAX_DATA_LEN])
{
    size_t i, j, t;
    uint32_t x = 0x9E3779B9u * (round + 1);

    for (i = 0; i < MAX_DATA_LEN; i++)
        order[i] = (round % 3 == 1) ? MAX_DATA_LEN - 1 - i : i;
    if (round % 3 != 2)
        return;
    for (i = MAX_DATA_LEN - 1; i > 0; i--) {
        x = x * 1664525u + 1013904223u;
        j = (x >> 8) % (i + 1);
        t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* APDUs per round: select (2) + READ BUFFER/GET RESPONSE (1 + 2*255)
 * + sign (3) + properties (1). */
#define APDUS_PER_ROUND (2 + 1 + 2 * (MAX_DATA_LEN - 1) + 3 + 1)

static void run(struct loop *lp, const struct vbuf *vb, unsigned rounds)
{
    uint8_t sig[256], props[0x20];
    bool have_sig = false, have_props = false;
    size_t order[MAX_DATA_LEN];
    unsigned r;
    size_t i, len, off;

    for (r = 0; r < rounds && !stop(lp); r++) {
        select_pki0(lp);
        length_order(r, order);
        for (i = 0; i < MAX_DATA_LEN && !stop(lp); i++) {
            len = order[i];
            /* Offsets move with the length and the round, always in range. */
            off = (len * 37 + r * 101) % (vb->len - len + 1);
            read_len(lp, vb, len, off);
        }
        if (stop(lp))
            break;
        sign_256(lp, sig, &have_sig);
        properties(lp, props, &have_props);
        printf("apdu_loop: round %u done, %lu APDUs sent, %lu failed so far\n",
               r + 1, lp->sent, lp->failed);
        fflush(stdout);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static void report(struct loop *lp, unsigned long planned, double took)
{
    size_t n = lp->sent < lp->latency_cap ? lp->sent : lp->latency_cap;
    unsigned long unsent = 0;
    size_t i;
    bool any = false;

    if (n > 0) {
        qsort(lp->latency_ms, n, sizeof(double), cmp_double);
        printf("apdu_loop: %lu APDUs in %.1f s; latency ms: median %.2f, p99 %.2f, max %.2f\n",
               lp->sent, took, lp->latency_ms[n / 2], lp->latency_ms[n * 99 / 100],
               lp->latency_ms[n - 1]);
    }
    /* As ranges ("0-51 53 60-256"): the first gap is where trouble began. */
    printf("apdu_loop: data lengths with failures:");
    for (i = 0; i <= MAX_DATA_LEN; i++) {
        size_t j = i;

        if (!lp->length_failed[i])
            continue;
        while (j < MAX_DATA_LEN && lp->length_failed[j + 1])
            j++;
        if (j > i)
            printf(" %zu-%zu", i, j);
        else
            printf(" %zu", i);
        any = true;
        i = j;
    }
    printf("%s\n", any ? "" : " none");
    if (lp->skipped > 0)
        printf("apdu_loop: %lu APDUs skipped (counted failed) after a failed exchange\n",
               lp->skipped);
    if (lp->passed + lp->failed < planned) {
        unsent = planned - lp->passed - lp->failed;
        printf("apdu_loop: %lu planned APDUs not sent (%s)\n", unsent,
               lp->gave_up ? "reader stopped answering" : "time limit");
        lp->failed += unsent;
    }
    printf("apdu_loop: %lu passed, %lu failed\n", lp->passed, lp->failed);
}

static int connect_card(struct loop *lp, const char *want)
{
    char readers[4096], *name;
    DWORD len = sizeof(readers), proto = 0;
    LONG rv;

    rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &lp->ctx);
    if (rv != SCARD_S_SUCCESS) {
        printf("apdu_loop: SCardEstablishContext: %s\n", pcsc_stringify_error(rv));
        return -1;
    }
    rv = SCardListReaders(lp->ctx, NULL, readers, &len);
    if (rv != SCARD_S_SUCCESS) {
        printf("apdu_loop: SCardListReaders: %s\n", pcsc_stringify_error(rv));
        return -1;
    }
    for (name = readers; *name != '\0'; name += strlen(name) + 1) {
        if (want == NULL || strstr(name, want) != NULL)
            break;
    }
    if (*name == '\0') {
        printf("apdu_loop: no reader matching '%s'\n", want ? want : "");
        return -1;
    }
    rv = SCardConnect(lp->ctx, name, SCARD_SHARE_EXCLUSIVE, SCARD_PROTOCOL_T0,
                      &lp->card, &proto);
    if (rv != SCARD_S_SUCCESS) {
        printf("apdu_loop: SCardConnect(%s, T=0): %s\n", name, pcsc_stringify_error(rv));
        return -1;
    }
    printf("apdu_loop: connected to '%s' with T=0\n", name);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: apdu_loop [-r READER_SUBSTRING] [-n ROUNDS] [-t SECONDS] [-v] CERT1.der\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct loop lp;
    static struct vbuf vb;
    const char *want = NULL;
    unsigned rounds = 6, seconds = 300;
    unsigned long planned;
    double t0;
    int opt;

    memset(&lp, 0, sizeof(lp));
    while ((opt = getopt(argc, argv, "r:n:t:v")) != -1) {
        switch (opt) {
        case 'r': want = optarg; break;
        case 'n': rounds = (unsigned)strtoul(optarg, NULL, 10); break;
        case 't': seconds = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'v': lp.verbose = true; break;
        default: usage();
        }
    }
    if (optind + 1 != argc || rounds == 0 || rounds > 1000 || seconds == 0)
        usage();
    if (load_vbuf(argv[optind], &vb) != 0)
        return 2;
    /* setvbuf: the output goes through a pipe to the guest console. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    planned = (unsigned long)rounds * APDUS_PER_ROUND;
    lp.latency_cap = planned;
    lp.latency_ms = calloc(planned, sizeof(double));
    if (lp.latency_ms == NULL)
        return 2;
    if (connect_card(&lp, want) != 0) {
        printf("apdu_loop: 0 passed, %lu failed\n", planned);
        return 1;
    }
    printf("apdu_loop: %u rounds of %d APDUs, data lengths 0..%d, time limit %us\n",
           rounds, APDUS_PER_ROUND, MAX_DATA_LEN, seconds);
    t0 = now_s();
    lp.deadline = t0 + seconds;
    run(&lp, &vb, rounds);
    report(&lp, planned, now_s() - t0);

    SCardDisconnect(lp.card, SCARD_LEAVE_CARD);
    SCardReleaseContext(lp.ctx);
    free(lp.latency_ms);
    return lp.failed == 0 ? 0 : 1;
}
