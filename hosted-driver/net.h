/*
 * Ethernet between a network card and a host backend.
 *
 * A netdev is one backend instance (-netdev user,id=N: libslirp, see
 * net_slirp.c).  A card attaches to it with three calls and never learns
 * which backend it talks to:
 *   netdev_attach    the card's can-receive and receive callbacks;
 *   netdev_send      a frame the guest transmitted (no FCS);
 *   netdev_rx_kick   the card has room again (the guest gave it buffers).
 * Frames toward the card go through a bounded queue: a backend may produce
 * them at any time (even while the card is inside netdev_send), and the
 * card takes them only from netdev_rx_kick or the run loop's net_poll,
 * never in the middle of one of its own register accesses.  A frame that
 * finds the queue full is dropped and counted.
 *
 * pcap=FILE on the -netdev writes both directions in pcap format.
 */
#ifndef RV_NET_H
#define RV_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct vclock;
struct netdev;

#define NET_MAX_FRAME 1518      /* largest Ethernet frame without its FCS (plus a VLAN tag's 4 would be 1522) */
#define NET_QUEUE_FRAMES 512

typedef bool (*net_can_receive_fn)(void *opaque);
typedef void (*net_receive_fn)(void *opaque, const uint8_t *frame, size_t len);

struct netdev_ops {
    /* A frame from the card to the backend. */
    void (*send)(struct netdev *nd, const uint8_t *frame, size_t len);
    /* Add the backend's descriptors to a poll set, wait at most timeout_ns, handle them. */
    void (*poll)(struct netdev *nd, int64_t timeout_ns);
    void (*free)(struct netdev *nd);
};

struct net_frame {
    uint16_t len;
    uint8_t data[NET_MAX_FRAME + 4];
};

struct netdev {
    char id[64];
    const struct netdev_ops *ops;
    void *backend;
    /* the card */
    net_can_receive_fn can_receive;
    net_receive_fn receive;
    void *card;
    bool attached;
    /* frames waiting for the card: a ring of NET_QUEUE_FRAMES */
    struct net_frame *queue;
    unsigned q_head, q_count;
    FILE *pcap;
    uint64_t tx_frames, rx_frames, rx_dropped;
};

/* Backends create their netdev here (the machine keeps the list: two
 * machines in one process, as the fuzzer runs them, each have their own).
 * Returns NULL (with one line in err) when the id is empty or too long. */
struct netdev *netdev_new(const char *id, const struct netdev_ops *ops, void *backend, char *err, size_t errlen);
void netdev_free(struct netdev *nd);
/* Start a pcap capture of everything that passes; false with err on failure. */
bool netdev_set_pcap(struct netdev *nd, const char *path, char *err, size_t errlen);

/* Card side. */
void netdev_attach(struct netdev *nd, net_can_receive_fn can, net_receive_fn rx, void *opaque);
void netdev_send(struct netdev *nd, const uint8_t *frame, size_t len);
void netdev_rx_kick(struct netdev *nd);

/* Backend side: a frame for the card (queued; oversized ones are dropped). */
void netdev_deliver(struct netdev *nd, const uint8_t *frame, size_t len);

/* Run loop: handle the backends' host I/O, waiting up to timeout_ns (0:
 * just look; only the first backend waits), then hand queued frames to
 * the cards. */
void net_poll(struct netdev *const *nds, int n, int64_t timeout_ns);

/* -netdev user,...: the libslirp backend (net_slirp.c).  Returns NULL with
 * one line in err for a bad option, a taken hostfwd port or a pcap file
 * that cannot be created. */
struct netdev *net_slirp_new(const char *spec, struct vclock *clock, char *err, size_t errlen);

/* The IEEE 802.3 CRC-32 of a frame (the FCS the cards append on receive and
 * the multicast filters hash). */
uint32_t net_crc32(const uint8_t *buf, size_t len);

#endif
