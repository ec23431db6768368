"""bench/terminal: the time from a card tap to the kiosk's confirmation, online and offline, next to the
bare API round trip of the boarding request, measured in the same run."""
