"""TODO stores"""
