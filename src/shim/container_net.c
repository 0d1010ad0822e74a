/*
 * container_net.c - loopback up and two per-namespace sysctls, no netlink.
 *
 * Owns: nothing.  Never: configures anything outside the caller's netns.
 */
#include "shim/container_net.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/fs.h"

static int write_sysctl(const char *path, const char *value, struct sb_err *err)
{
    if (sb_write_file(path, value) < 0)
        return sb_err_sys(err, 500, "net: writing \"%s\" to %s", value, path);
    return 0;
}

int net_setup_loopback(uint32_t uid_base, struct sb_err *err)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return sb_err_sys(err, 500, "net: socket");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    int saved = errno;
    close(s);
    if (rc < 0) {
        errno = saved;
        return sb_err_sys(err, 500, "net: bringing lo up");
    }
    char range[48];
    snprintf(range, sizeof(range), "%u %u", uid_base, uid_base + 65535u);
    if (write_sysctl("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0", err) < 0)
        return -1;
    return write_sysctl("/proc/sys/net/ipv4/ping_group_range", range, err);
}
