/* log: leveled diagnostics on stderr ("tool: func: message"), and ASSERT for programmer errors.
 * Ownership: nothing allocated; the level and tool name are the only mutable globals of lib/.
 * Errors: logging never fails visibly; ASSERT aborts and is never used on user input. */
#ifndef DLM_LOG_H
#define DLM_LOG_H

enum log_level { LOG_QUIET = -1, LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Messages above this level are dropped. Default LOG_WARN. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* The name printed before every message (the tool's name); default "dlmkit". */
void log_set_tool(const char *tool);
const char *log_tool(void);

/* Prints "<tool>: <func>: <message>\n" on stderr when level <= the current level. */
void log_msg(enum log_level level, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(...) log_msg(LOG_ERROR, __func__, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __func__, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __func__, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __func__, __VA_ARGS__)

/* Aborts with file:line and the expression. For invariants only, never for input checks. */
#define ASSERT(x)                                                                       \
    do {                                                                                \
        if (!(x)) log_assert_fail(__FILE__, __LINE__, #x);                              \
    } while (0)
_Noreturn void log_assert_fail(const char *file, int line, const char *expr);

#endif
