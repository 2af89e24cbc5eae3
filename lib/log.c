/* log: stderr diagnostics (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static enum log_level current_level = LOG_WARN;
static const char *tool_name = "dlmkit";

void log_set_level(enum log_level level) { current_level = level; }
enum log_level log_get_level(void) { return current_level; }
void log_set_tool(const char *tool) { tool_name = tool; }
const char *log_tool(void) { return tool_name; }

void log_msg(enum log_level level, const char *func, const char *fmt, ...)
{
    if (level > current_level) return;
    static const char *const names[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "%s: %s: ", tool_name, level == LOG_ERROR ? func : names[level]);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void log_assert_fail(const char *file, int line, const char *expr)
{
    fprintf(stderr, "%s: %s:%d: assertion failed: %s\n", tool_name, file, line, expr);
    abort();
}
