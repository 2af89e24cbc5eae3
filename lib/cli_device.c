/* cli_device: --device and --precision of the model tools (see cli_device.h). */
#include "cli_device.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"

void cli_device_open(struct cli_device *d)
{
    err_t e;
    const char *precision = d->precision ? d->precision : "fp32";
    if (device_parse(d->device, &d->kind, &e) < 0) die_usage("%s", e.msg);
    if (!(d->be = device_backend(d->kind, &e))) die("%s", e.msg);
    if (device_set_precision(d->kind, precision, &e) < 0) die_usage("%s", e.msg);
    snprintf(d->label, sizeof d->label, "%s%s%s", device_name(d->kind),
             strcmp(precision, "fp32") ? "/" : "", strcmp(precision, "fp32") ? precision : "");
}
