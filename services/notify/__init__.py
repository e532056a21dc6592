"""notify — telling people what happened (件件有回音): WeChat subscribe messages, SMS, the in-app inbox and
WeCom robots for staff, from rules over the other services' events."""
