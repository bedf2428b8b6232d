"""serving/sidecar"""
