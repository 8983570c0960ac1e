/* The USB gadget around the virtual reader: configfs entries, the functionfs
 * mount, the descriptor and string blobs, binding to the UDC, and teardown.
 * Kernel documentation: Documentation/usb/gadget_configfs.rst and
 * Documentation/usb/functionfs.rst; blob formats in <linux/usb/functionfs.h>. */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/usb/ch9.h>
#include <linux/usb/functionfs.h>

#include "ffs.h"

#define CONFIGFS_GADGETS "/sys/kernel/config/usb_gadget"
#define UDC_CLASS "/sys/class/udc"
#define INTERFACE_STRING "smartcrd virtual CCID reader"

/* Writes one configfs attribute: DIR/NAME = value. */
static int put_attr(const char *dir, const char *name, const char *value)
{
	char path[2 * FFS_PATH_MAX];
	size_t len = strlen(value);
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY);
	if (fd < 0) {
		ffs_log("cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	/* The UDC file takes "" (unbind) as a write of a lone newline. */
	n = write(fd, len ? value : "\n", len ? len : 1);
	if (n < 0 || (size_t)n != (len ? len : 1)) {
		ffs_log("cannot write '%s' to %s: %s", value, path,
			n < 0 ? strerror(errno) : "short write");
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int put_hex(const char *dir, const char *name, unsigned value)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "0x%04x", value);
	return put_attr(dir, name, buf);
}

static int make_dir(const char *path, unsigned *made, unsigned bit)
{
	if (mkdir(path, 0755) != 0) {
		ffs_log("cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	*made |= bit;
	return 0;
}

/* The only UDC in /sys/class/udc, as --udc's default. */
int ffs_find_udc(char *out, size_t cap)
{
	DIR *d = opendir(UDC_CLASS);
	struct dirent *e;
	unsigned count = 0;

	if (d == NULL) {
		ffs_log("no %s (%s): load a UDC driver, e.g. modprobe dummy_hcd", UDC_CLASS,
			strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (count++ == 0)
			snprintf(out, cap, "%s", e->d_name);
		else
			ffs_log("several UDCs (%s, %s...): choose one with --udc", out, e->d_name);
	}
	closedir(d);
	if (count == 0)
		ffs_log("no UDC in %s: load a UDC driver, e.g. modprobe dummy_hcd", UDC_CLASS);
	return count == 1 ? 0 : -1;
}

static int gadget_attributes(const struct ffs *f)
{
	const struct vr_profile *p = &f->profile;
	const char *g = f->gadget_dir;

	if (put_hex(g, "idVendor", p->vendor_id) || put_hex(g, "idProduct", p->product_id) ||
	    put_hex(g, "bcdDevice", p->bcd_device) || put_hex(g, "bcdUSB", 0x0200))
		return -1;
	/* dummy_hcd runs the device at min(its own speed, max_speed): this keeps a
	 * full-speed profile at 64-byte packets even when dummy_hcd offers high
	 * speed. */
	return put_attr(g, "max_speed", p->high_speed ? "high-speed" : "full-speed");
}

int ffs_gadget_create(struct ffs *f)
{
	const struct vr_profile *p = &f->profile;
	char path[2 * FFS_PATH_MAX], target[2 * FFS_PATH_MAX];
	struct stat st;

	if (stat(CONFIGFS_GADGETS, &st) != 0) {
		ffs_log("no %s: modprobe libcomposite and mount -t configfs none /sys/kernel/config",
			CONFIGFS_GADGETS);
		return -1;
	}
	snprintf(f->gadget_dir, sizeof(f->gadget_dir), "%s/%s", CONFIGFS_GADGETS, f->gadget_name);
	if (stat(f->gadget_dir, &st) == 0) {
		ffs_log("gadget %s exists already (another smartcrd-vreader?): remove it or use "
			"--gadget-name", f->gadget_dir);
		return -1;
	}
	if (make_dir(f->gadget_dir, &f->made, FFS_MADE_GADGET) || gadget_attributes(f))
		return -1;

	snprintf(path, sizeof(path), "%s/strings/0x409", f->gadget_dir);
	if (make_dir(path, &f->made, FFS_MADE_STRINGS) ||
	    put_attr(path, "manufacturer", p->manufacturer) ||
	    put_attr(path, "product", p->product) || put_attr(path, "serialnumber", p->serial))
		return -1;

	snprintf(path, sizeof(path), "%s/configs/c.1", f->gadget_dir);
	if (make_dir(path, &f->made, FFS_MADE_CONFIG) || put_attr(path, "MaxPower", "100") ||
	    put_attr(path, "bmAttributes", "0x80"))
		return -1;
	snprintf(path, sizeof(path), "%s/configs/c.1/strings/0x409", f->gadget_dir);
	if (make_dir(path, &f->made, FFS_MADE_CONFIG_STRINGS) ||
	    put_attr(path, "configuration", "CCID"))
		return -1;

	snprintf(target, sizeof(target), "%s/functions/ffs.%s", f->gadget_dir, f->gadget_name);
	if (make_dir(target, &f->made, FFS_MADE_FUNCTION))
		return -1;
	snprintf(path, sizeof(path), "%s/configs/c.1/ffs.%s", f->gadget_dir, f->gadget_name);
	if (symlink(target, path) != 0) {
		ffs_log("cannot link %s into the configuration: %s", target, strerror(errno));
		return -1;
	}
	f->made |= FFS_MADE_LINK;

	snprintf(f->mount_dir, sizeof(f->mount_dir), "/dev/ffs-%s", f->gadget_name);
	if (mkdir(f->mount_dir, 0755) == 0)
		f->made |= FFS_MADE_MOUNTDIR;
	else if (errno != EEXIST) {
		ffs_log("cannot create %s: %s", f->mount_dir, strerror(errno));
		return -1;
	}
	/* The functionfs instance is named by the function's directory suffix. */
	if (mount(f->gadget_name, f->mount_dir, "functionfs", 0, NULL) != 0) {
		ffs_log("cannot mount functionfs %s on %s: %s (modprobe usb_f_fs?)", f->gadget_name,
			f->mount_dir, strerror(errno));
		return -1;
	}
	f->made |= FFS_MADE_MOUNT;
	return 0;
}

/* --- descriptors (USB 2.0 section 9.6, CCID 1.1 section 5) ------------------ */

struct blob {
	uint8_t b[512];
	size_t len;
	bool overflow;
};

static void put(struct blob *bl, const void *p, size_t n)
{
	if (bl->len + n > sizeof(bl->b)) {
		bl->overflow = true;
		return;
	}
	memcpy(bl->b + bl->len, p, n);
	bl->len += n;
}

static void put_le32(struct blob *bl, uint32_t v)
{
	uint32_t le = htole32(v);

	put(bl, &le, 4);
}

static void put_endpoint(struct blob *bl, uint8_t addr, uint8_t attr, uint16_t maxp,
			 uint8_t interval)
{
	struct usb_endpoint_descriptor_no_audio ep = {
		.bLength = USB_DT_ENDPOINT_SIZE,
		.bDescriptorType = USB_DT_ENDPOINT,
		.bEndpointAddress = addr,
		.bmAttributes = attr,
		.wMaxPacketSize = htole16(maxp),
		.bInterval = interval,
	};

	put(bl, &ep, sizeof(ep));
}

/* One speed's set: interface, CCID class descriptor, bulk OUT, bulk IN and, if
 * the profile has one, interrupt IN. FunctionFS numbers the endpoint files
 * ep1, ep2, ep3 in this order; the UDC gives the real addresses. Returns the
 * number of descriptors. */
static unsigned put_speed_set(struct blob *bl, const struct vr_profile *p, bool high)
{
	uint8_t ccid[VR_CLASS_DESC_LEN];
	struct usb_interface_descriptor intf = {
		.bLength = USB_DT_INTERFACE_SIZE,
		.bDescriptorType = USB_DT_INTERFACE,
		.bInterfaceNumber = 0,
		.bNumEndpoints = p->has_interrupt ? 3 : 2,
		.bInterfaceClass = USB_CLASS_CSCID,   /* 0x0B: the kernel then takes 0x21 */
		.iInterface = 1,
	};

	vr_class_descriptor(p, ccid);
	put(bl, &intf, sizeof(intf));
	put(bl, ccid, sizeof(ccid));
	put_endpoint(bl, 0x01 | USB_DIR_OUT, USB_ENDPOINT_XFER_BULK, high ? 512 : 64, 0);
	put_endpoint(bl, 0x02 | USB_DIR_IN, USB_ENDPOINT_XFER_BULK, high ? 512 : 64, 0);
	if (!p->has_interrupt)
		return 4;
	/* 8 bytes carry NotifySlotChange for 4 slots and HardwareError. bInterval:
	 * 16 ms at full speed; 2^(8-1) microframes = 16 ms at high speed. */
	put_endpoint(bl, 0x03 | USB_DIR_IN, USB_ENDPOINT_XFER_INT, 8, high ? 8 : 16);
	return 5;
}

static int write_blob(int fd, const struct blob *bl, const char *what)
{
	ssize_t n;

	if (bl->overflow) {
		ffs_log("internal: the %s blob does not fit in %zu bytes", what, sizeof(bl->b));
		return -1;
	}
	n = write(fd, bl->b, bl->len);
	if (n < 0 || (size_t)n != bl->len) {
		ffs_log("ep0 refused the %s (%zu bytes): %s", what, bl->len,
			n < 0 ? strerror(errno) : "short write");
		return -1;
	}
	return 0;
}

static int check_class_descriptor(const struct vr_profile *p)
{
	uint8_t ccid[VR_CLASS_DESC_LEN];

	vr_class_descriptor(p, ccid);
	if (ccid[0] != VR_CLASS_DESC_LEN || ccid[1] != 0x21) {
		ffs_log("the reader's class descriptor starts %02X %02X, expected 36 21", ccid[0],
			ccid[1]);
		return -1;
	}
	return 0;
}

int ffs_gadget_write_descriptors(struct ffs *f)
{
	struct blob d = { .len = 0 }, s = { .len = 0 };
	char path[2 * FFS_PATH_MAX];
	unsigned fs_count, hs_count;
	uint16_t lang = htole16(0x0409);
	size_t at_counts;

	if (check_class_descriptor(&f->profile))
		return -1;
	snprintf(path, sizeof(path), "%s/ep0", f->mount_dir);
	f->ep0 = open(path, O_RDWR);
	if (f->ep0 < 0) {
		ffs_log("cannot open %s: %s", path, strerror(errno));
		return -1;
	}

	/* Header v2: magic, length, flags, then one count per speed (patched below). */
	put_le32(&d, FUNCTIONFS_DESCRIPTORS_MAGIC_V2);
	put_le32(&d, 0);
	put_le32(&d, FUNCTIONFS_HAS_FS_DESC | FUNCTIONFS_HAS_HS_DESC);
	at_counts = d.len;
	put_le32(&d, 0);
	put_le32(&d, 0);
	fs_count = put_speed_set(&d, &f->profile, false);
	hs_count = put_speed_set(&d, &f->profile, true);
	if (!d.overflow) {
		uint32_t v[3] = { htole32((uint32_t)d.len), htole32(fs_count), htole32(hs_count) };

		memcpy(d.b + 4, &v[0], 4);
		memcpy(d.b + at_counts, &v[1], 8);
	}
	if (write_blob(f->ep0, &d, "descriptors"))
		return -1;

	/* Strings: magic, length, str_count 1, lang_count 1, then the language. */
	put_le32(&s, FUNCTIONFS_STRINGS_MAGIC);
	put_le32(&s, 0);
	put_le32(&s, 1);
	put_le32(&s, 1);
	put(&s, &lang, 2);
	put(&s, INTERFACE_STRING, sizeof(INTERFACE_STRING));
	if (!s.overflow) {
		uint32_t len = htole32((uint32_t)s.len);

		memcpy(s.b + 4, &len, 4);
	}
	return write_blob(f->ep0, &s, "strings");
}

int ffs_gadget_open_endpoints(struct ffs *f)
{
	char path[2 * FFS_PATH_MAX];
	int *fds[] = { &f->ep_out, &f->ep_in, &f->ep_int };
	unsigned i, n = f->profile.has_interrupt ? 3 : 2;

	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/ep%u", f->mount_dir, i + 1);
		*fds[i] = open(path, O_RDWR);
		if (*fds[i] < 0) {
			ffs_log("cannot open %s: %s", path, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Writing the UDC name plugs the device in; "" unplugs it (a hot unplug for
 * the host). */
int ffs_gadget_bind(struct ffs *f, bool bind)
{
	if (put_attr(f->gadget_dir, "UDC", bind ? f->udc : ""))
		return -1;
	ffs_log("%s %s", bind ? "bound to" : "unbound from", f->udc);
	return 0;
}

static void remove_dir(const char *path)
{
	if (rmdir(path) != 0)
		ffs_log("cannot remove %s: %s", path, strerror(errno));
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Undoes ffs_gadget_create in reverse order; the UDC must be unbound and the
 * endpoint threads stopped. */
void ffs_gadget_destroy(struct ffs *f)
{
	char path[2 * FFS_PATH_MAX];

	close_fd(&f->ep_int);
	close_fd(&f->ep_in);
	close_fd(&f->ep_out);
	close_fd(&f->ep0);
	if ((f->made & FFS_MADE_MOUNT) && umount(f->mount_dir) != 0)
		ffs_log("cannot unmount %s: %s", f->mount_dir, strerror(errno));
	if (f->made & FFS_MADE_MOUNTDIR)
		remove_dir(f->mount_dir);
	if (f->made & FFS_MADE_LINK) {
		snprintf(path, sizeof(path), "%s/configs/c.1/ffs.%s", f->gadget_dir, f->gadget_name);
		if (unlink(path) != 0)
			ffs_log("cannot remove %s: %s", path, strerror(errno));
	}
	if (f->made & FFS_MADE_FUNCTION) {
		snprintf(path, sizeof(path), "%s/functions/ffs.%s", f->gadget_dir, f->gadget_name);
		remove_dir(path);
	}
	if (f->made & FFS_MADE_CONFIG_STRINGS) {
		snprintf(path, sizeof(path), "%s/configs/c.1/strings/0x409", f->gadget_dir);
		remove_dir(path);
	}
	if (f->made & FFS_MADE_CONFIG) {
		snprintf(path, sizeof(path), "%s/configs/c.1", f->gadget_dir);
		remove_dir(path);
	}
	if (f->made & FFS_MADE_STRINGS) {
		snprintf(path, sizeof(path), "%s/strings/0x409", f->gadget_dir);
		remove_dir(path);
	}
	if (f->made & FFS_MADE_GADGET)
		remove_dir(f->gadget_dir);
	f->made = 0;
}
