"""canteen — Elderly canteens: menus, orders, subsidies, settlement, delivery, care signals."""
