/*
 * The card-facing side of every network backend: the list of netdevs, the
 * queue of frames waiting for a card, and the pcap capture.
 */
#include "hosted-driver/net.h"
#include "hosted-driver/xalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

struct netdev *netdev_new(const char *id, const struct netdev_ops *ops, void *backend, char *err, size_t errlen)
{
    if (!id || !*id || strlen(id) >= sizeof(((struct netdev *)0)->id)) {
        snprintf(err, errlen, "id= is required (at most 63 characters)");
        return NULL;
    }
    struct netdev *nd = xcalloc(1, sizeof(*nd));
    snprintf(nd->id, sizeof(nd->id), "%s", id);
    nd->ops = ops;
    nd->backend = backend;
    nd->queue = xcalloc(NET_QUEUE_FRAMES, sizeof(struct net_frame));
    return nd;
}

void netdev_free(struct netdev *nd)
{
    if (!nd)
        return;
    if (nd->ops && nd->ops->free)
        nd->ops->free(nd);
    if (nd->pcap)
        fclose(nd->pcap);
    free(nd->queue);
    free(nd);
}

/* ---- pcap ---- */

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);     /* pcap files are written in the writer's byte order; the magic says which */
}

bool netdev_set_pcap(struct netdev *nd, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        snprintf(err, errlen, "pcap=%s: %s", path, strerror(errno));
        return false;
    }
    uint8_t hdr[24];
    put32(hdr, 0xa1b2c3d4);
    uint16_t major = 2, minor = 4;
    memcpy(hdr + 4, &major, 2);
    memcpy(hdr + 6, &minor, 2);
    put32(hdr + 8, 0);          /* thiszone */
    put32(hdr + 12, 0);         /* sigfigs */
    put32(hdr + 16, 65535);     /* snaplen */
    put32(hdr + 20, 1);         /* LINKTYPE_ETHERNET */
    fwrite(hdr, 1, sizeof(hdr), f);
    if (nd->pcap)
        fclose(nd->pcap);
    nd->pcap = f;
    return true;
}

static void capture(struct netdev *nd, const uint8_t *frame, size_t len)
{
    if (!nd->pcap)
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    uint8_t rec[16];
    put32(rec, (uint32_t)tv.tv_sec);
    put32(rec + 4, (uint32_t)tv.tv_usec);
    put32(rec + 8, (uint32_t)len);
    put32(rec + 12, (uint32_t)len);
    fwrite(rec, 1, sizeof(rec), nd->pcap);
    fwrite(frame, 1, len, nd->pcap);
}

/* ---- frames ---- */

void netdev_attach(struct netdev *nd, net_can_receive_fn can, net_receive_fn rx, void *opaque)
{
    nd->can_receive = can;
    nd->receive = rx;
    nd->card = opaque;
    nd->attached = true;
}

void netdev_send(struct netdev *nd, const uint8_t *frame, size_t len)
{
    if (!nd || len == 0 || len > NET_MAX_FRAME + 4)
        return;
    nd->tx_frames++;
    capture(nd, frame, len);
    if (nd->ops && nd->ops->send)
        nd->ops->send(nd, frame, len);
}

void netdev_deliver(struct netdev *nd, const uint8_t *frame, size_t len)
{
    if (len == 0 || len > NET_MAX_FRAME + 4 || nd->q_count == NET_QUEUE_FRAMES || !nd->attached) {
        nd->rx_dropped++;
        return;
    }
    capture(nd, frame, len);
    struct net_frame *f = &nd->queue[(nd->q_head + nd->q_count) % NET_QUEUE_FRAMES];
    f->len = len;
    memcpy(f->data, frame, len);
    nd->q_count++;
}

void netdev_rx_kick(struct netdev *nd)
{
    if (!nd || !nd->attached)
        return;
    while (nd->q_count && nd->can_receive(nd->card)) {
        struct net_frame *f = &nd->queue[nd->q_head];
        nd->q_head = (nd->q_head + 1) % NET_QUEUE_FRAMES;
        nd->q_count--;
        nd->rx_frames++;
        nd->receive(nd->card, f->data, f->len);
    }
}

void net_poll(struct netdev *const *nds, int n, int64_t timeout_ns)
{
    for (int k = 0; k < n; k++) {
        struct netdev *nd = nds[k];
        /* Frames already waiting make the card busy: don't sleep on the host. */
        if (nd->ops && nd->ops->poll)
            nd->ops->poll(nd, nd->q_count ? 0 : timeout_ns);
        netdev_rx_kick(nd);
        timeout_ns = 0;     /* only the first backend waits */
    }
}

/* ---- CRC ---- */

uint32_t net_crc32(const uint8_t *buf, size_t len)
{
    static uint32_t table[256];
    if (!table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < len; i++)
        crc = table[(crc ^ buf[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}
