"""The in-car kiosk: a small local web app the car's tablet browser shows full screen (issue 5).

`driver_terminal.kiosk.app.create_kiosk_app` builds it; `driver-terminal kiosk` serves it on 127.0.0.1.
Importing this package imports no web framework, so the terminal's other modules stay light.
"""
