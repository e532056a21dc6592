"""The identity service: accounts, sign-in (WeChat mini-program, staff passwords + TOTP), token issuing."""
