"""simhsi.data"""
