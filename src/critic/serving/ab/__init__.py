"""serving/ab"""
