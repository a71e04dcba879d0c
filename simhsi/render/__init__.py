"""simhsi.render"""
