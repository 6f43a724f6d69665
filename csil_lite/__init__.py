"""csil_lite: Coherent Soft Imitation Learning in small, fast JAX.

Modules follow the data flow of the method: demonstrations (`data`) -> BC of a HetStat policy
(`pretrain`, `nets`, `distributions`) -> coherent reward (`coherent`) -> KL-regularised soft actor-critic
(`agents`, `loop`) -> results (`plotting`).
"""

__version__ = "0.1.0"
