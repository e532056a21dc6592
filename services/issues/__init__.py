"""issues — residents report problems and vote; staff dispatch and resolve against deadlines (章贡治理)."""
