"""Compute resources: devices, nodes, and the local inventory (NVML, psutil)."""

from aistack.compute.resources import CpuInfo, GpuDevice, Node, parse_memory_mb

__all__ = ["CpuInfo", "GpuDevice", "Node", "parse_memory_mb"]
