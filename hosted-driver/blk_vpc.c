#include "hosted-driver/blk_driver.h"
static int o(struct blk *b, char *e, size_t l) { blk_set_err(e, l, "%s: vpc not yet", b->path); return -1; }
static void c(struct blk *b) { (void)b; }
const struct blk_format blk_fmt_vpc = { .name = "vpc", .open = o, .close = c };
